package broker

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/purehealth/purehealth/agent/internal/payload"
)

// Roles a User can have.
const (
	// RoleDevice may publish readings under this station (purehealth/<station>/<param> and
	// purehealth/<station>/readings) and subscribe to purehealth/<station>/#.
	RoleDevice = "device"
	// RoleViewer may only subscribe to purehealth/<station>/#.
	RoleViewer = "viewer"
	// RoleAdmin may publish and subscribe anywhere, $SYS included, except publishing on the
	// agent's outputs.
	RoleAdmin = "admin"
)

// The leaves of the agent's outputs on the local broker (contract). Only the agent publishes
// there: the ACL refuses every client, admins included, so that no device can forge a WQI
// or an alert.
const (
	LeafWQI    = "wqi"    // retained: current WQI
	LeafAlerts = "alerts" // QoS 1: one message per alert opened or resolved
	LeafStatus = "status" // retained: agent status summary
	LeafErrors = "errors" // QoS 0: one message per refused payload or reading
)

func isOutput(leaf string) bool {
	switch leaf {
	case LeafWQI, LeafAlerts, LeafStatus, LeafErrors:
		return true
	}
	return false
}

// User is an account on the broker.
type User struct {
	Name         string
	PasswordHash string // bcrypt (golang.org/x/crypto/bcrypt); never plain text
	Role         string // RoleDevice, RoleViewer or RoleAdmin
	// Publish and Subscribe grant extra topic filters (wildcards allowed) beyond the role.
	// They never open the agent's outputs to publishing.
	Publish, Subscribe []string
}

// account is a validated User, or the anonymous device.
type account struct {
	name      string
	nameHash  [sha256.Size]byte
	hash      []byte
	role      string
	publish   []string
	subscribe []string
}

// access decides who may connect and what they may do. It is immutable after newAccess and
// safe for concurrent use.
type access struct {
	station   string
	accounts  []*account          // scanned in full on every login (see authenticate)
	byName    map[string]*account // for ACL checks after login
	anonymous *account            // nil unless anonymous clients are allowed
	// dummyHash is compared against when the username is unknown, so that a login attempt
	// costs the same bcrypt work whether or not the user exists.
	dummyHash []byte
}

func newAccess(station string, users []User, allowAnonymous bool) (*access, error) {
	a := &access{station: station, byName: make(map[string]*account, len(users))}
	if allowAnonymous {
		a.anonymous = &account{role: RoleDevice}
	}
	var errs []error
	cost := bcrypt.MinCost
	for i, u := range users {
		where := fmt.Sprintf("users[%d] %q", i, u.Name)
		if u.Name == "" {
			errs = append(errs, fmt.Errorf("users[%d]: empty name", i))
			continue
		}
		if _, dup := a.byName[u.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
			continue
		}
		c, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: password hash is not bcrypt: %w", where, err))
			continue
		}
		cost = max(cost, c)
		switch u.Role {
		case RoleDevice, RoleViewer, RoleAdmin:
		default:
			errs = append(errs, fmt.Errorf("%s: role %q: want %s, %s or %s",
				where, u.Role, RoleDevice, RoleViewer, RoleAdmin))
			continue
		}
		bad := false
		for _, f := range append(append([]string(nil), u.Publish...), u.Subscribe...) {
			if !mqtt.IsValidFilter(f, false) {
				errs = append(errs, fmt.Errorf("%s: invalid topic filter %q", where, f))
				bad = true
			}
		}
		if bad {
			continue
		}
		acct := &account{
			name:      u.Name,
			nameHash:  sha256.Sum256([]byte(u.Name)),
			hash:      []byte(u.PasswordHash),
			role:      u.Role,
			publish:   append([]string(nil), u.Publish...),
			subscribe: append([]string(nil), u.Subscribe...),
		}
		a.accounts = append(a.accounts, acct)
		a.byName[u.Name] = acct
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The dummy must cost what the real hashes cost, or timing tells unknown names apart.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("dummy password: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword(secret, cost)
	if err != nil {
		return nil, fmt.Errorf("dummy password hash: %w", err)
	}
	a.dummyHash = dummy
	return a, nil
}

// refusal says why a connection is refused.
type refusal int

const (
	admitted       refusal = iota
	badCredentials         // unknown user or wrong password
	notAuthorized          // anonymous when not allowed, or a forbidden Will
)

// authenticate checks a login. An empty username is the anonymous device. The usernames are
// compared through their SHA-256 in constant time over all accounts, and an unknown name is
// checked against a dummy bcrypt hash, so neither the comparison nor bcrypt reveals whether
// the name exists.
func (a *access) authenticate(username, password []byte) (*account, refusal) {
	if len(username) == 0 {
		if a.anonymous == nil {
			return nil, notAuthorized
		}
		return a.anonymous, admitted
	}
	want := sha256.Sum256(username)
	var found *account
	for _, acct := range a.accounts {
		if subtle.ConstantTimeCompare(acct.nameHash[:], want[:]) == 1 {
			found = acct
		}
	}
	hash := a.dummyHash
	if found != nil {
		hash = found.hash
	}
	if err := bcrypt.CompareHashAndPassword(hash, password); err != nil || found == nil {
		return nil, badCredentials
	}
	return found, admitted
}

// lookup finds the account of a client that has logged in.
func (a *access) lookup(username []byte) (*account, bool) {
	if len(username) == 0 {
		return a.anonymous, a.anonymous != nil
	}
	acct, ok := a.byName[string(username)]
	return acct, ok
}

// ownsOutput reports whether topic is one of the agent's outputs or below one.
func (a *access) ownsOutput(topic string) bool {
	// strings.Cut rather than Split: this runs for every publish, and Cut allocates nothing.
	root, rest, ok := strings.Cut(topic, "/")
	if !ok {
		return false
	}
	station, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	leaf, _, _ := strings.Cut(rest, "/")
	return root == payload.TopicRoot && station == a.station && isOutput(leaf)
}

// isIngest reports whether topic is one of this station's reading topics.
func (a *access) isIngest(topic string) bool {
	station, leaf, err := payload.ParseTopic(topic)
	return err == nil && station == a.station && !isOutput(leaf)
}

// canPublish reports whether acct may publish on the topic name (no wildcards).
func (a *access) canPublish(acct *account, topic string) bool {
	if topic == "" || topic[0] == '$' || strings.IndexByte(topic, '+') >= 0 || strings.IndexByte(topic, '#') >= 0 ||
		a.ownsOutput(topic) {
		return false
	}
	switch acct.role {
	case RoleAdmin:
		return true
	case RoleDevice:
		if a.isIngest(topic) {
			return true
		}
	}
	for _, f := range acct.publish {
		if covers(f, topic) {
			return true
		}
	}
	return false
}

// canSubscribe reports whether acct may receive everything filter matches. It is also asked
// about each concrete topic before a message is delivered.
func (a *access) canSubscribe(acct *account, filter string) bool {
	if mqtt.IsSharedFilter(filter) { // $share/<group>/<filter>
		parts := strings.SplitN(filter, "/", 3)
		if len(parts) < 3 {
			return false
		}
		filter = parts[2]
	}
	if filter == "" {
		return false
	}
	if acct.role == RoleAdmin {
		return true
	}
	if covers(payload.Topic(a.station, "#"), filter) {
		return true
	}
	for _, g := range acct.subscribe {
		if covers(g, filter) {
			return true
		}
	}
	return false
}

// covers reports whether every topic that filter matches is also matched by allowed. Both
// are valid MQTT topic filters; a topic name is a filter without wildcards.
func covers(allowed, filter string) bool {
	al := strings.Split(allowed, "/")
	fl := strings.Split(filter, "/")
	// A wildcard in the first level does not match topics starting with $ (MQTT 4.7.2).
	if strings.HasPrefix(filter, "$") && (al[0] == "+" || al[0] == "#") {
		return false
	}
	for i, lvl := range al {
		if lvl == "#" {
			return true // matches the rest, and the parent level itself
		}
		if i >= len(fl) {
			return false
		}
		switch f := fl[i]; {
		case lvl == "+":
			if f == "#" {
				return false
			}
		case f == "+" || f == "#" || f != lvl:
			return false
		}
	}
	return len(fl) == len(al)
}
