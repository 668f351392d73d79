package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"time"
)

// email sends messages through an SMTP server (net/smtp): one mail per message to every
// recipient. A recipient the server refuses fails the whole message before any text is
// sent, so that a retry does not give the others a second copy.
type email struct {
	cfg      SMTP
	addr     string
	from     string   // the envelope sender
	header   string   // From: as written
	to       []string // envelope recipients
	toHeader []string
	tls      *tls.Config
	hostname string
	channel  string
	now      func() time.Time
}

func newEmail(c Channel, hostname string, now func() time.Time) (*email, error) {
	from, err := mail.ParseAddress(c.SMTP.From)
	if err != nil {
		return nil, fmt.Errorf("smtp.from: %w", err)
	}
	e := &email{
		cfg: c.SMTP, addr: net.JoinHostPort(c.SMTP.Host, strconv.Itoa(c.SMTP.Port)),
		from: from.Address, header: from.String(), hostname: hostname, channel: c.Name, now: now,
		tls: &tls.Config{ServerName: c.SMTP.Host, MinVersion: tls.VersionTLS12},
	}
	for _, s := range c.To {
		a, err := mail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("to %q: %w", s, err)
		}
		e.to, e.toHeader = append(e.to, a.Address), append(e.toHeader, a.String())
	}
	if c.SMTP.CAFile != "" {
		if e.tls.RootCAs, err = loadCAs(c.SMTP.CAFile); err != nil {
			return nil, fmt.Errorf("smtp.ca_file: %w", err)
		}
	}
	if e.cfg.TLS == TLSAuto && e.cfg.Port == 465 {
		e.cfg.TLS = TLSImplicit
	}
	return e, nil
}

func (e *email) send(ctx context.Context, m *message) error {
	if err := e.transact(ctx, emailMessage(m, e.channel, e.header, e.toHeader, e.hostname, e.now())); err != nil {
		return fmt.Errorf("smtp %s: %w", e.addr, err)
	}
	return nil
}

func (e *email) transact(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return err
	}
	// net/smtp knows no context: the end of ctx cuts the exchange short (after ctx.Err
	// is set, so that the error says why), and the connection's own deadline, a little
	// later, is the backstop.
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl.Add(time.Second)); err != nil {
			conn.Close()
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if e.cfg.TLS == TLSImplicit {
		conn = tls.Client(conn, e.tls)
	}
	c, err := smtp.NewClient(conn, e.cfg.Host)
	if err != nil {
		conn.Close()
		return e.cause(ctx, err)
	}
	defer c.Close()
	if err := c.Hello(e.hostname); err != nil {
		return e.cause(ctx, err)
	}
	if e.cfg.TLS == TLSAuto || e.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(e.tls); err != nil {
				return e.cause(ctx, fmt.Errorf("starttls: %w", err))
			}
		} else if e.cfg.TLS == TLSStartTLS {
			return errors.New("the server does not offer STARTTLS (smtp.tls: starttls)")
		}
	}
	if e.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the server offers no AUTH for smtp.username")
		}
		if err := c.Auth(smtp.PlainAuth("", e.cfg.Username, e.cfg.Password, e.cfg.Host)); err != nil {
			return e.cause(ctx, fmt.Errorf("auth: %w", err))
		}
	}
	if err := c.Mail(e.from); err != nil {
		return e.cause(ctx, fmt.Errorf("mail from: %w", err))
	}
	for _, to := range e.to {
		if err := c.Rcpt(to); err != nil {
			return e.cause(ctx, fmt.Errorf("rcpt to %s: %w", to, err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return e.cause(ctx, fmt.Errorf("data: %w", err))
	}
	if _, err := w.Write(msg); err != nil {
		return e.cause(ctx, fmt.Errorf("data: %w", err))
	}
	// Close ends the text and reads the server's answer: the mail is taken only then.
	if err := w.Close(); err != nil {
		return e.cause(ctx, fmt.Errorf("data: %w", err))
	}
	// The server has taken the mail: a failing QUIT changes nothing about it.
	_ = c.Quit()
	return nil
}

// cause prefers the end of ctx to the I/O error it provoked.
func (e *email) cause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	return err
}

func (e *email) close() {}
