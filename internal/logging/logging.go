// Package logging is the log section both daemons' configuration files share (`log:
// {level, format}`) and the one *slog.Logger each builds from it in main.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Config sets a daemon's log output.
type Config struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// Default is the log section of a file that says nothing about logging.
func Default() Config { return Config{Level: "info", Format: "text"} }

// Validate reports every problem, named by its key under log.
func (c Config) Validate() error {
	var errs []error
	if _, err := parseLevel(c.Level); err != nil {
		errs = append(errs, err)
	}
	if c.Format != "text" && c.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q must be text or json", c.Format))
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level: %q must be debug, info, warn or error", s)
}

// New returns the logger c describes, writing to w. A level Validate would refuse logs at
// info.
func New(w io.Writer, c Config) *slog.Logger {
	level, err := parseLevel(c.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
