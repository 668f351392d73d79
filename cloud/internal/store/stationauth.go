package store

import (
	"context"
	"errors"
	"fmt"
)

// How a station authenticates at ingest (stations.auth).
const (
	AuthToken = "token" // its bearer token (the default)
	AuthCert  = "cert"  // a client certificate naming it
	AuthBoth  = "both"  // both, naming the same station
)

// ValidAuth reports whether mode is one of the modes.
func ValidAuth(mode string) bool { return mode == AuthToken || mode == AuthCert || mode == AuthBoth }

// ErrCredentials refuses credentials that do not satisfy the station's mode; the error
// says what is missing or wrong.
var ErrCredentials = errors.New("credentials refused")

// Credentials are what an ingest request presents: a bearer token, and the station a
// verified client certificate names ("" when there is none).
type Credentials struct {
	Token       string
	CertStation string
}

// AuthenticateStation returns the station that c identifies, checked against the
// station's mode: ErrNotFound for an unknown token or a certificate of no station in
// service, ErrCredentials when a token and a certificate name different stations or the
// mode wants what is missing.
func (s *Store) AuthenticateStation(ctx context.Context, c Credentials) (string, error) {
	var id, mode string
	err := s.query(ctx, "authenticate station", func(ctx context.Context) error {
		if c.Token != "" {
			return s.pool.QueryRow(ctx, `SELECT id, auth FROM stations WHERE token_sha256 = $1`,
				hashToken(c.Token)).Scan(&id, &mode)
		}
		return s.pool.QueryRow(ctx, `SELECT id, auth FROM stations WHERE id = $1 AND removed_at IS NULL`,
			c.CertStation).Scan(&id, &mode)
	})
	if errNoRows(err) || c.Token == "" && c.CertStation == "" {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("authenticate station: %w", err)
	}
	switch {
	case c.Token != "" && c.CertStation != "" && c.CertStation != id:
		return "", fmt.Errorf("%w: the certificate names station %s, the token is station %s's", ErrCredentials, c.CertStation, id)
	case mode == AuthToken && c.Token == "":
		return "", fmt.Errorf("%w: station %s authenticates with its token", ErrCredentials, id)
	case mode == AuthCert && c.CertStation == "":
		return "", fmt.Errorf("%w: station %s authenticates with a client certificate", ErrCredentials, id)
	case mode == AuthBoth && (c.Token == "" || c.CertStation == ""):
		return "", fmt.Errorf("%w: station %s needs both its token and its client certificate", ErrCredentials, id)
	}
	return id, nil
}

// SetStationAuth sets how a station authenticates at ingest.
func (s *Store) SetStationAuth(ctx context.Context, id, mode string) error {
	if !ValidAuth(mode) {
		return fmt.Errorf("%w: auth %q (token, cert or both)", ErrInvalid, mode)
	}
	var found bool
	err := s.query(ctx, "set station auth", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `UPDATE stations SET auth = $2 WHERE id = $1`, id, mode)
		found = tag.RowsAffected() > 0
		return err
	})
	if err != nil {
		return fmt.Errorf("set auth of %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("station %s: %w", id, ErrNotFound)
	}
	return nil
}
