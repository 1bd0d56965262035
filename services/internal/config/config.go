// Package config parses a service's command line: flags with environment
// fallbacks and the --version flag every Flotilla binary answers.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Version is the release this binary was built from; `make build` sets it
// with -ldflags "-X github.com/flotilla-dev/flotilla/services/internal/config.Version=...".
var Version = "dev"

// ErrVersion is returned by Parse after printing the version, so main can
// exit 0 without starting anything.
var ErrVersion = errors.New("version printed")

// EnvName is the environment variable that backs a flag: FLOTILLA_ followed
// by the flag name in upper case with dashes as underscores
// (--planner-addr → FLOTILLA_PLANNER_ADDR).
func EnvName(flagName string) string {
	return "FLOTILLA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs. A flag not given on the command line takes its
// value from its environment variable (see EnvName) when that is set. With
// --version it prints name and version to out and returns ErrVersion.
// Flag usage lines get the variable name appended.
func Parse(fs *flag.FlagSet, name string, args []string, out io.Writer) error {
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "version" {
			f.Usage += " (env " + EnvName(f.Name) + ")"
		}
	})
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if *showVersion {
		fmt.Fprintf(out, "%s %s\n", name, FullVersion())
		return ErrVersion
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || f.Name == "version" {
			return
		}
		v, ok := os.LookupEnv(EnvName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
		}
	})
	return errors.Join(errs...)
}

// FullVersion is Version plus the VCS revision the binary was built from,
// when the Go toolchain recorded one.
func FullVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return Version + " (" + info.GoVersion + ")"
	}
	return Version + " (" + rev + dirty + ", " + info.GoVersion + ")"
}
