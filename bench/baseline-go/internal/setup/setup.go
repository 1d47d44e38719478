// Package setup owns what both binaries read at start: the settings from
// the environment (the same names as ours, so `make bench` starts every pair
// alike), the mTLS configuration and the JSON logger.
package setup

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
)

// Env returns the environment variable name, or def when it is unset.
func Env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// Addr joins BIND_ADDR and the port in portVar.
func Addr(portVar, defPort string) string {
	return net.JoinHostPort(Env("BIND_ADDR", "127.0.0.1"), Env(portVar, defPort))
}

// TLSFiles loads TLS_CERT and TLS_KEY, and TLS_CA as the pool that the
// peer's certificate must chain to.
func TLSFiles() (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(os.Getenv("TLS_CERT"), os.Getenv("TLS_KEY"))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("TLS_CERT/TLS_KEY: %w", err)
	}
	pem, err := os.ReadFile(os.Getenv("TLS_CA"))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("TLS_CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("TLS_CA: no certificate in %s", os.Getenv("TLS_CA"))
	}
	return cert, pool, nil
}

// Logger writes one JSON object per line on stdout, as the log/slog docs show.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stdout, nil))
}

// Fatal logs err and exits 1.
func Fatal(log *slog.Logger, msg string, err error) {
	log.Error(msg, "error", err)
	os.Exit(1)
}
