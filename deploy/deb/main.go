// Command deb builds the ph-agent Debian packages for Raspberry Pi OS (arm64, armhf) and
// amd64 from the cross-compiled agent, with nfpm: `make deb` runs it.
//
//	go run ./deploy/deb -version "$(git describe --always --dirty)" [-bin bin/cross] [-out bin/deb]
//
// Each package holds the agent, its configuration as a conffile, the hardened systemd unit
// and the maintainer scripts that create the service account, all from this directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deb:", err)
		os.Exit(1)
	}
}

// target is one Debian architecture and the agent build it ships.
type target struct {
	arch   string // Debian's name
	binary string // file name in the -bin directory (make cross)
}

// targets are the packages `make deb` writes. Raspberry Pi OS's 32-bit armhf is ARMv6
// with hardware floating point (unlike Debian's ARMv7 armhf), so it gets the GOARM=6
// build, which runs on every Pi from the Zero and 1 up.
var targets = []target{
	{arch: "amd64", binary: "ph-agent-linux-amd64"},
	{arch: "arm64", binary: "ph-agent-linux-arm64"},
	{arch: "armhf", binary: "ph-agent-linux-armv6"},
}

// The installed paths; the unit and the configuration name them too.
const (
	name        = "ph-agent"
	binPath     = "/usr/bin/ph-agent"
	configDir   = "/etc/ph-agent"
	configPath  = "/etc/ph-agent/agent.yaml"
	unitPath    = "/usr/lib/systemd/system/ph-agent.service"
	docDir      = "/usr/share/doc/ph-agent"
	description = `Pure Health river station agent
 ph-agent runs a river water-quality station: an embedded MQTT broker and
 serial (Atlas Scientific EZO), CoAP and HTTP probe drivers feed a durable
 local buffer, the CPCB water quality index and local alerts, and readings
 are forwarded to the Pure Health cloud whenever the network allows.
 .
 The package installs a hardened systemd service running as the ph-agent
 user (member of dialout for serial probes), configured in
 /etc/ph-agent/agent.yaml, with its buffer in /var/lib/ph-agent.`
)

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("deb", flag.ContinueOnError)
	version := fs.String("version", "", "the agent's version, as `git describe --always --dirty` prints it (required)")
	revision := fs.String("revision", "", "Debian revision, for a repackaging of the same agent version (e.g. 2)")
	root := fs.String("root", ".", "the repository root: this directory's files, the README and the example config")
	bin := fs.String("bin", "bin/cross", "directory holding "+strings.Join(binaries(), ", "))
	out := fs.String("out", "bin/deb", "directory the packages are written to")
	archs := fs.String("arch", archNames(), "comma-separated Debian architectures to build")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	v, err := debVersion(*version)
	if err != nil {
		return err
	}
	if *revision != "" && !revisionPattern.MatchString(*revision) {
		return fmt.Errorf("-revision %q: use digits and letters, such as 2", *revision)
	}
	chosen, err := choose(*archs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, t := range chosen {
		if err := ctx.Err(); err != nil {
			return err
		}
		path, err := build(packageInfo(t, v, *revision, *root, *bin), *out)
		if err != nil {
			return fmt.Errorf("%s package: %w", t.arch, err)
		}
		fmt.Fprintln(stdout, path)
	}
	return nil
}

// choose returns the targets named in list, in the order of targets.
func choose(list string) ([]target, error) {
	want := map[string]bool{}
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			want[a] = true
		}
	}
	var out []target
	for _, t := range targets {
		if want[t.arch] {
			out = append(out, t)
			delete(want, t.arch)
		}
	}
	if len(want) > 0 || len(out) == 0 {
		return nil, fmt.Errorf("-arch %q: choose from %s", list, archNames())
	}
	return out, nil
}

func archNames() string {
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.arch
	}
	return strings.Join(names, ",")
}

func binaries() []string {
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.binary
	}
	return out
}

var (
	// describePattern is `git describe` of a release tag: v1.2.3, v1.2.3-rc.1, with
	// -N-gHASH N commits later, and -dirty for uncommitted changes.
	describePattern = regexp.MustCompile(`^v?(\d+\.\d+\.\d+)(?:-([0-9A-Za-z.]+?))??(?:-(\d+)-g([0-9a-f]{4,40}))?(-dirty)?$`)
	// commitPattern is `git describe --always` without any tag: an abbreviated commit.
	commitPattern   = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
	revisionPattern = regexp.MustCompile(`^[0-9A-Za-z.+~]+$`)
)

// debVersion turns the agent's version into a Debian version that sorts the way releases
// follow each other: a pre-release sorts before its release (1.2.0~rc.1 < 1.2.0), builds
// after a tag sort after it (1.2.0 < 1.2.0+3.gabc1234). Without a release tag only the
// commit is known, and 0.0.0+gHASH sorts no better than the hashes: tag releases.
func debVersion(v string) (string, error) {
	if m := describePattern.FindStringSubmatch(v); m != nil {
		out := m[1]
		if m[2] != "" {
			out += "~" + m[2]
		}
		var meta []string
		if m[3] != "" {
			meta = append(meta, m[3], "g"+m[4])
		}
		if m[5] != "" {
			meta = append(meta, "dirty")
		}
		if len(meta) > 0 {
			out += "+" + strings.Join(meta, ".")
		}
		return out, nil
	}
	if m := commitPattern.FindStringSubmatch(v); m != nil {
		out := "0.0.0+g" + m[1]
		if m[2] != "" {
			out += ".dirty"
		}
		return out, nil
	}
	return "", fmt.Errorf("-version %q is neither `git describe` of a vX.Y.Z tag nor a commit", v)
}

// packageInfo describes the package of one architecture.
func packageInfo(t target, version, revision, root, bin string) *nfpm.Info {
	here := filepath.Join(root, "deploy", "deb")
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode}}
	}
	conf := file(filepath.Join(here, "agent.yaml"), configPath, 0o640)
	conf.Type = files.TypeConfig
	dir := &files.Content{Destination: configDir, Type: files.TypeDir,
		FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: 0o750}}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          name,
		Arch:          t.arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none", // debVersion has made it a Debian version already
		Release:       revision,
		Section:       "misc",
		Priority:      "optional",
		Maintainer:    "Pure Health maintainers <packages@purehealth.example>",
		Description:   description,
		Overridables: nfpm.Overridables{
			// adduser: the maintainer scripts create the service account with it.
			Depends: []string{"adduser"},
			Contents: files.Contents{
				file(filepath.Join(bin, t.binary), binPath, 0o755),
				dir,
				conf,
				file(filepath.Join(here, "ph-agent.service"), unitPath, 0o644),
				file(filepath.Join(root, "README.md"), docDir+"/README.md", 0o644),
				file(filepath.Join(root, "configs", "agent.example.yaml"), docDir+"/agent.example.yaml", 0o644),
			},
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(here, "postinst"),
				PreRemove:   filepath.Join(here, "prerm"),
				PostRemove:  filepath.Join(here, "postrm"),
			},
			Deb: nfpm.Deb{Compression: "xz"},
		},
	})
	// One time for every file (SOURCE_DATE_EPOCH, else now), not the checkout's mtimes:
	// the same commit then gives the same package, byte for byte.
	for _, c := range info.Contents {
		c.FileInfo.MTime = info.MTime
	}
	return info
}

// build writes the package for info into dir as ph-agent_<version>_<arch>.deb and returns
// its path. The file appears whole or not at all.
func build(info *nfpm.Info, dir string) (path string, err error) {
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	version := info.Version
	if info.Release != "" {
		version += "-" + info.Release
	}
	path = filepath.Join(dir, fmt.Sprintf("%s_%s_%s.deb", info.Name, version, info.Arch))
	tmp, err := os.CreateTemp(dir, ".deb-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.Remove(tmp.Name()))
		}
	}()
	if err := deb.Default.Package(info, tmp); err != nil {
		return "", errors.Join(err, tmp.Close())
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", errors.Join(err, tmp.Close())
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}
