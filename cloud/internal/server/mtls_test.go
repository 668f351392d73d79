package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/config"
	"github.com/purehealth/purehealth/cloud/internal/server"
	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/shared/wire"
)

// issuer makes certificates for the test: a CA, and leaves signed by it (or self-signed).
type issuer struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newIssuer(t *testing.T) *issuer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Pure Health stations CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &issuer{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a certificate for cn (a server's when ip is set, else a client's); with
// self it is self-signed instead.
func (is *issuer) leaf(cn string, ip net.IP, self bool) tls.Certificate {
	t := is.t
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if ip != nil {
		tmpl.IPAddresses, tmpl.ExtKeyUsage = []net.IP{ip}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	parent, signer := is.cert, is.key
	if self {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writePEM(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	der, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600))
	return certFile, keyFile
}

// A station can prove who it is with a client certificate naming it, instead of or
// beside its token, as its auth mode says; over real TLS with certificates made here.
func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newIssuer(t)
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.pem, 0o600))
	certFile, keyFile := writePEM(t, dir, "server", ca.leaf("ph-cloud", net.IPv4(127, 0, 0, 1), false))

	st, url := storetest.Open(t, store.Options{})
	token := storetest.AddStation(t, st, "MH-PUNE-001")
	other := storetest.AddStation(t, st, "MH-NASHIK-001")
	cfg, err := config.Parse([]byte("database_url: " + url + "\ningest: {rate_per_station: 1000, burst: 1000}\n" +
		"tls: {cert_file: " + certFile + ", key_file: " + keyFile + ", client_ca_file: " + caFile + "}\n"))
	require.NoError(t, err)
	srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "https://" + ln.Addr().String()
	runServer(t, srv, ln)

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	pune, nashik := ca.leaf("MH-PUNE-001", nil, false), ca.leaf("MH-NASHIK-001", nil, false)
	forged := ca.leaf("MH-PUNE-001", nil, true) // names the station, not issued by the CA
	seq := uint64(0)
	post := func(cert *tls.Certificate, tok string) int {
		t.Helper()
		tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		defer client.CloseIdleConnections()
		seq++
		body, err := wire.Encode(storetest.Batch("MH-PUNE-001", storetest.Readings(seq, 1, time.Now().Add(-time.Minute), time.Second)))
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, base+"/v1/ingest", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Encoding", "gzip")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		mode  string
		cert  *tls.Certificate
		token string
		want  int
	}{
		{store.AuthToken, nil, token, http.StatusOK},
		{store.AuthToken, &pune, "", http.StatusUnauthorized},      // the mode wants the token
		{store.AuthToken, &pune, token, http.StatusOK},             // a certificate beside it is fine
		{store.AuthToken, &nashik, token, http.StatusUnauthorized}, // naming another station
		{store.AuthToken, nil, other, http.StatusForbidden},        // another station's token: its batch is not its own
		{store.AuthCert, &pune, "", http.StatusOK},
		{store.AuthCert, nil, token, http.StatusUnauthorized},
		{store.AuthCert, &forged, "", http.StatusUnauthorized}, // not issued by the CA: no certificate at all
		{store.AuthCert, &nashik, "", http.StatusForbidden},    // Nashik's certificate, Pune's batch
		{store.AuthBoth, &pune, token, http.StatusOK},
		{store.AuthBoth, &pune, "", http.StatusUnauthorized},
		{store.AuthBoth, nil, token, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		require.NoError(t, st.SetStationAuth(t.Context(), "MH-PUNE-001", tt.mode))
		require.NoError(t, st.SetStationAuth(t.Context(), "MH-NASHIK-001", tt.mode))
		name := "no certificate"
		if tt.cert != nil {
			name = tt.cert.Leaf.Subject.CommonName
		}
		assert.Equal(t, tt.want, post(tt.cert, tt.token), "mode %s, certificate %s, token %t", tt.mode, name, tt.token != "")
	}
	assert.ErrorIs(t, st.SetStationAuth(t.Context(), "MH-PUNE-001", "password"), store.ErrInvalid)
}
