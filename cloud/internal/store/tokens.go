package store

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is what a token may do.
type Role string

// The roles. A station's token (RoleStation) ingests for that station alone; the others
// are tokens of people and tools, made with AddToken.
const (
	RoleStation  Role = "station"
	RoleLab      Role = "lab"      // posts lab samples
	RoleViewer   Role = "viewer"   // reads: the API, the live stream, the dashboard
	RoleOperator Role = "operator" // reads and acts: acknowledges alerts, manages stations, posts samples
)

// TokenRoles are the roles AddToken gives.
var TokenRoles = []Role{RoleLab, RoleViewer, RoleOperator}

// Principal is who a token belongs to.
type Principal struct {
	Name    string // the token's name; a station's id for RoleStation
	Role    Role
	Station string // the station of a RoleStation token, "" otherwise
}

// Is reports whether the principal has one of roles.
func (p Principal) Is(roles ...Role) bool { return slices.Contains(roles, p.Role) }

// Token is a token of a person or tool, as listed (the token itself is never stored).
type Token struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

var tokenNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// TokenNameRule describes a valid token name for error messages.
const TokenNameRule = "1–64 letters, digits, '.', '@', '-' or '_'"

// AddToken makes a token of role named name and returns it. Only its hash is stored, as
// for station tokens: it cannot be shown again, only revoked and made anew.
func (s *Store) AddToken(ctx context.Context, name string, role Role) (string, error) {
	if !tokenNamePattern.MatchString(name) {
		return "", fmt.Errorf("%w: token name %q must be %s", ErrInvalid, name, TokenNameRule)
	}
	if !slices.Contains(TokenRoles, role) {
		return "", fmt.Errorf("%w: role %q must be lab, viewer or operator", ErrInvalid, role)
	}
	token, hash := newToken()
	err := s.query(ctx, "add token", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO api_tokens (name, role, token_sha256) VALUES ($1, $2, $3)`,
			name, string(role), hash)
		return err
	})
	if isUniqueViolation(err) {
		return "", fmt.Errorf("token %s: %w", name, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("add token %s: %w", name, err)
	}
	return token, nil
}

// Tokens lists the tokens of people and tools by name.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	var out []Token
	err := s.query(ctx, "list tokens", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT name, role, created_at FROM api_tokens ORDER BY name`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Token, error) {
			var t Token
			err := row.Scan(&t.Name, &t.Role, &t.CreatedAt)
			t.CreatedAt = t.CreatedAt.UTC()
			return t, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken deletes the token named name: it stops working at once. ErrNotFound when
// there is none.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	n, err := s.exec(ctx, "revoke token", `DELETE FROM api_tokens WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("token %s: %w", name, ErrNotFound)
	}
	return nil
}

// AuthenticateToken maps a bearer token to its principal: a station's token or a token
// of a person or tool. ErrNotFound for a token nobody has.
func (s *Store) AuthenticateToken(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNotFound
	}
	hash := hashToken(token)
	var p Principal
	err := s.query(ctx, "authenticate", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT id, 'station', id FROM stations WHERE token_sha256 = $1
			UNION ALL
			SELECT name, role, '' FROM api_tokens WHERE token_sha256 = $1`, hash).Scan(&p.Name, &p.Role, &p.Station)
	})
	if errNoRows(err) {
		return Principal{}, ErrNotFound
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	return p, nil
}
