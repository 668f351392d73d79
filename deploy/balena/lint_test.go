package balena

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/deploy/internal/deploytest"
)

// The docker-compose subset balena's supervisor accepts (balena docs, "docker-compose.yml
// fields"): compose file format 2.x, these service fields, named volumes only, build
// contexts inside the project.
var (
	composeTopKeys     = []string{"version", "services", "volumes", "networks"}
	composeServiceKeys = []string{
		"build", "cap_add", "cap_drop", "cgroup_parent", "command", "cpu_shares", "cpu_quota",
		"cpus", "cpuset", "devices", "depends_on", "dns", "dns_opt", "dns_search", "domainname",
		"entrypoint", "environment", "expose", "extra_hosts", "group_add", "healthcheck",
		"hostname", "image", "init", "ipc", "labels", "mac_address", "mem_limit",
		"mem_reservation", "network_mode", "networks", "oom_kill_disable", "oom_score_adj",
		"pid", "pids_limit", "ports", "privileged", "read_only", "restart", "security_opt",
		"shm_size", "stop_grace_period", "stop_signal", "sysctls", "tmpfs", "ulimits", "user",
		"userns_mode", "volumes", "working_dir",
	}
	composeBuildKeys = []string{"context", "dockerfile", "args", "cache_from", "extra_hosts",
		"labels", "shm_size", "target"}
	// Fields balena names as unsupported, with why when it says.
	composeUnsupported = map[string]string{
		"container_name": "the supervisor names containers itself",
		"links":          "use the service name on the compose network instead",
		"logging":        "balena collects the logs itself",
		"volumes_from":   "share a named volume instead",
		"env_file":       "set device or fleet variables instead",
		"secrets":        "a compose 3 field",
		"configs":        "a compose 3 field",
		"deploy":         "a compose 3 field",
		"external_links": "", "blkio_config": "", "cpu_count": "", "cpu_percent": "",
		"isolation": "", "memswap_limit": "", "mem_swappiness": "", "runtime": "", "scale": "",
		"stdin_open": "", "tty": "", "volume_driver": "",
	}
	// The service labels balena gives a meaning; any other io.balena.* label is a typo.
	balenaFeatureLabels = []string{"balena-socket", "dbus", "sysfs", "procfs", "kernel-modules",
		"firmware", "journal-logs", "supervisor-api", "balena-api", "gpu"}
	balenaUpdateStrategies = []string{"download-then-kill", "kill-then-download",
		"delete-then-download", "hand-over"}
)

// deviceArch is balena's %%BALENA_ARCH%% of each device type a fleet of station gateways
// may use (balena's device type list).
var deviceArch = map[string]string{
	"raspberry-pi":           "rpi",
	"raspberry-pi2":          "armv7hf",
	"raspberrypi3":           "armv7hf",
	"raspberrypi3-64":        "aarch64",
	"raspberrypi4-64":        "aarch64",
	"raspberrypi400-64":      "aarch64",
	"raspberrypicm4-ioboard": "aarch64",
	"raspberrypi5":           "aarch64",
	"raspberrypi0-2w-64":     "aarch64",
	"fincm3":                 "armv7hf",
	"generic-aarch64":        "aarch64",
	"generic-amd64":          "amd64",
	"intel-nuc":              "amd64",
}

var interpolation = regexp.MustCompile(`\$\{?[A-Za-z_]`)

// noInterpolation flags every scalar that asks for variable substitution, which balena
// does not do: the text would reach the container as it is.
func noInterpolation(p *deploytest.Findings, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && interpolation.MatchString(strings.ReplaceAll(n.Value, "$$", "")) {
		p.Add(n, "%q: balena does not substitute variables in compose files", n.Value)
	}
	for _, c := range n.Content {
		noInterpolation(p, c)
	}
}

// lintCompose checks a compose file against the subset balena accepts. dir is the
// project directory it sits in (build contexts must be inside it).
func lintCompose(file string, doc []byte, dir string) []string {
	p := &deploytest.Findings{File: file}
	top := deploytest.ParseYAML(p, doc)
	if top == nil {
		return p.List
	}
	noInterpolation(p, top)
	for _, kv := range deploytest.Pairs(top) {
		if !slices.Contains(composeTopKeys, kv[0].Value) {
			p.Add(kv[0], "top-level %q is not supported by balena", kv[0].Value)
		}
	}
	if v := deploytest.Lookup(top, "version"); v == nil || !regexp.MustCompile(`^2(\.[0-4])?$`).MatchString(v.Value) {
		p.Add(v, "version must be a compose 2.x format (balena supports up to 2.4), quoted")
	} else if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		p.Add(v, "version %s must be quoted, or YAML reads it as a number", v.Value)
	}
	volumes := map[string]bool{}
	for _, kv := range deploytest.Pairs(deploytest.Lookup(top, "volumes")) {
		volumes[kv[0].Value] = true
		if len(kv[1].Content) > 0 {
			p.Add(kv[1], "volume %q: only plain named volumes ({}) are supported", kv[0].Value)
		}
	}
	services := deploytest.Lookup(top, "services")
	if len(deploytest.Pairs(services)) == 0 {
		p.Add(services, "no services")
	}
	names := map[string]bool{}
	for _, kv := range deploytest.Pairs(services) {
		names[kv[0].Value] = true
	}
	for _, kv := range deploytest.Pairs(services) {
		lintService(p, kv[0].Value, kv[1], dir, volumes, names)
	}
	return p.List
}

func lintService(p *deploytest.Findings, name string, svc *yaml.Node, dir string, volumes, services map[string]bool) {
	at := "services." + name
	for _, kv := range deploytest.Pairs(svc) {
		k := kv[0].Value
		if why, known := composeUnsupported[k]; known {
			p.Add(kv[0], "%s.%s is not supported by balena%s", at, k, map[bool]string{true: ": " + why}[why != ""])
		} else if !slices.Contains(composeServiceKeys, k) {
			p.Add(kv[0], "%s.%s is not a field balena supports", at, k)
		}
	}
	build, image := deploytest.Lookup(svc, "build"), deploytest.Lookup(svc, "image")
	if build == nil && image == nil {
		p.Add(svc, "%s: needs build or image", at)
	}
	if build != nil {
		lintBuild(p, at, build, dir)
	}
	if nm := deploytest.Lookup(svc, "network_mode"); nm != nil {
		switch {
		case nm.Value == "bridge", nm.Value == "host", nm.Value == "none":
		case strings.HasPrefix(nm.Value, "service:") && services[strings.TrimPrefix(nm.Value, "service:")]:
		default:
			p.Add(nm, "%s.network_mode %q: balena supports bridge, host, none or service:<a service>", at, nm.Value)
		}
		if nm.Value == "host" && deploytest.Lookup(svc, "ports") != nil {
			p.Add(deploytest.Lookup(svc, "ports"), "%s.ports mean nothing with network_mode host", at)
		}
	}
	for _, v := range deploytest.Items(deploytest.Lookup(svc, "volumes")) {
		src, _, ok := strings.Cut(v.Value, ":")
		switch {
		case v.Kind != yaml.ScalarNode:
			p.Add(v, "%s.volumes: only the short syntax NAME:PATH is supported", at)
		case !ok || strings.ContainsAny(src[:min(1, len(src))], "/.~"):
			p.Add(v, "%s.volumes %q: bind mounts are not supported; use a named volume (or an io.balena.features label)", at, v.Value)
		case !volumes[src]:
			p.Add(v, "%s.volumes %q: volume %q is not declared under the top-level volumes", at, v.Value, src)
		}
	}
	for _, d := range deploytest.Items(deploytest.Lookup(svc, "devices")) {
		host, _, _ := strings.Cut(d.Value, ":")
		if d.Kind != yaml.ScalarNode || !path.IsAbs(host) {
			p.Add(d, "%s.devices %q: HOST_PATH[:CONTAINER_PATH[:PERMISSIONS]]", at, d.Value)
		}
	}
	if dep := deploytest.Lookup(svc, "depends_on"); dep != nil {
		if dep.Kind != yaml.SequenceNode {
			p.Add(dep, "%s.depends_on: balena supports only the list form", at)
		}
		for _, d := range dep.Content {
			if !services[d.Value] {
				p.Add(d, "%s.depends_on: no service %q", at, d.Value)
			}
		}
	}
	if r := deploytest.Lookup(svc, "restart"); r != nil && !slices.Contains([]string{"no", "always", "on-failure", "unless-stopped"}, r.Value) {
		p.Add(r, "%s.restart %q: no, always, on-failure or unless-stopped", at, r.Value)
	}
	if g := deploytest.Lookup(svc, "stop_grace_period"); g != nil {
		if _, err := time.ParseDuration(g.Value); err != nil {
			p.Add(g, "%s.stop_grace_period %q is not a duration", at, g.Value)
		}
	}
	lintLabels(p, at, deploytest.Lookup(svc, "labels"))
}

func lintBuild(p *deploytest.Findings, at string, build *yaml.Node, dir string) {
	context, dockerfile := build, (*yaml.Node)(nil)
	if build.Kind == yaml.MappingNode {
		for _, kv := range deploytest.Pairs(build) {
			if !slices.Contains(composeBuildKeys, kv[0].Value) {
				p.Add(kv[0], "%s.build.%s is not supported by balena", at, kv[0].Value)
			}
		}
		context, dockerfile = deploytest.Lookup(build, "context"), deploytest.Lookup(build, "dockerfile")
	}
	ctx := "."
	if context != nil {
		ctx = context.Value
	}
	clean := path.Clean(ctx)
	switch {
	case strings.Contains(ctx, "://") || strings.HasPrefix(ctx, "git@"):
		p.Add(context, "%s.build context %q: balena builds only from the project, not from URLs", at, ctx)
		return
	case path.IsAbs(ctx) || clean == ".." || strings.HasPrefix(clean, "../"):
		p.Add(context, "%s.build context %q is outside the project directory balena uploads", at, ctx)
		return
	}
	fi, err := os.Stat(filepath.Join(dir, clean))
	if err != nil || !fi.IsDir() {
		p.Add(context, "%s.build context %q is not a directory of the project", at, ctx)
		return
	}
	names := []string{"Dockerfile.template", "Dockerfile"}
	if dockerfile != nil {
		names = []string{dockerfile.Value}
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, clean, n)); err == nil {
			return
		}
	}
	p.Add(build, "%s.build context %q has no %s", at, ctx, strings.Join(names, " or "))
}

func lintLabels(p *deploytest.Findings, at string, labels *yaml.Node) {
	if labels == nil {
		return
	}
	type label struct {
		n    *yaml.Node
		k, v string
	}
	var all []label
	switch labels.Kind {
	case yaml.MappingNode:
		for _, kv := range deploytest.Pairs(labels) {
			all = append(all, label{kv[0], kv[0].Value, kv[1].Value})
		}
	case yaml.SequenceNode:
		for _, n := range labels.Content {
			k, v, _ := strings.Cut(n.Value, "=")
			all = append(all, label{n, k, v})
		}
	default:
		p.Add(labels, "%s.labels: a mapping or a list of KEY=VALUE", at)
	}
	for _, l := range all {
		switch {
		case strings.HasPrefix(l.k, "io.balena.features."):
			if !slices.Contains(balenaFeatureLabels, strings.TrimPrefix(l.k, "io.balena.features.")) {
				p.Add(l.n, "%s.labels: %q is not a balena feature label (%s)", at, l.k, strings.Join(balenaFeatureLabels, ", "))
			} else if !slices.Contains([]string{"1", "0", "true", "false"}, l.v) {
				p.Add(l.n, "%s.labels: %s=%q: use '1' to enable", at, l.k, l.v)
			}
		case l.k == "io.balena.update.strategy":
			if !slices.Contains(balenaUpdateStrategies, l.v) {
				p.Add(l.n, "%s.labels: update strategy %q is not one of %s", at, l.v, strings.Join(balenaUpdateStrategies, ", "))
			}
		case l.k == "io.balena.update.handover-timeout":
			if !regexp.MustCompile(`^\d+$`).MatchString(l.v) {
				p.Add(l.n, "%s.labels: handover timeout %q must be milliseconds", at, l.v)
			}
		case strings.HasPrefix(l.k, "io.balena.") || strings.HasPrefix(l.k, "io.resin."):
			p.Add(l.n, "%s.labels: %q is not a label balena knows", at, l.k)
		}
	}
}

var (
	semverPattern  = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// lintBalenaYML checks the fleet's balena.yml: the fields balena reads and device types it
// knows, with a default among the supported ones.
func lintBalenaYML(file string, doc []byte) []string {
	p := &deploytest.Findings{File: file}
	top := deploytest.ParseYAML(p, doc)
	if top == nil {
		return p.List
	}
	for _, kv := range deploytest.Pairs(top) {
		if !slices.Contains([]string{"name", "type", "description", "version", "post-provisioning",
			"assets", "data", "joinable"}, kv[0].Value) {
			p.Add(kv[0], "%q is not a balena.yml field", kv[0].Value)
		}
	}
	if n := deploytest.Lookup(top, "name"); n == nil || strings.TrimSpace(n.Value) == "" {
		p.Add(n, "name is required")
	}
	if t := deploytest.Lookup(top, "type"); t == nil || (t.Value != "sw.application" && t.Value != "sw.block") {
		p.Add(t, "type must be sw.application (or sw.block)")
	}
	if v := deploytest.Lookup(top, "version"); v != nil && !semverPattern.MatchString(v.Value) {
		p.Add(v, "version %q is not a semantic version (balena stamps releases with it)", v.Value)
	}
	data := deploytest.Lookup(top, "data")
	for _, kv := range deploytest.Pairs(data) {
		if !slices.Contains([]string{"applicationEnvironmentVariables", "applicationConfigVariables",
			"defaultDeviceType", "supportedDeviceTypes"}, kv[0].Value) {
			p.Add(kv[0], "data.%s is not a balena.yml field", kv[0].Value)
		}
	}
	for _, list := range []string{"applicationEnvironmentVariables", "applicationConfigVariables"} {
		for _, item := range deploytest.Items(deploytest.Lookup(data, list)) {
			kvs := deploytest.Pairs(item)
			if len(kvs) != 1 || kvs[0][1].Kind != yaml.ScalarNode {
				p.Add(item, "data.%s: each entry is one NAME: value", list)
				continue
			}
			name := kvs[0][0].Value
			reserved := strings.HasPrefix(name, "BALENA_") || strings.HasPrefix(name, "RESIN_")
			switch {
			case !envNamePattern.MatchString(name):
				p.Add(item, "data.%s: %q is not a variable name", list, name)
			case list == "applicationEnvironmentVariables" && reserved:
				p.Add(item, "data.%s: %s is reserved for configuration variables", list, name)
			case list == "applicationConfigVariables" && !reserved:
				p.Add(item, "data.%s: %s must start with BALENA_ or RESIN_", list, name)
			}
		}
	}
	supported := deploytest.Lookup(data, "supportedDeviceTypes")
	if supported == nil || len(deploytest.Items(supported)) == 0 {
		p.Add(data, "data.supportedDeviceTypes: list the device types of the fleet")
	}
	var types []string
	for _, t := range deploytest.Items(supported) {
		if _, ok := deviceArch[t.Value]; !ok {
			p.Add(t, "data.supportedDeviceTypes: %q is not a device type this fleet knows", t.Value)
		}
		if slices.Contains(types, t.Value) {
			p.Add(t, "data.supportedDeviceTypes: %q twice", t.Value)
		}
		types = append(types, t.Value)
	}
	if d := deploytest.Lookup(data, "defaultDeviceType"); d != nil && !slices.Contains(types, d.Value) {
		p.Add(d, "data.defaultDeviceType %q is not among supportedDeviceTypes", d.Value)
	}
	return p.List
}

func TestFleetFilesLint(t *testing.T) {
	compose, err := os.ReadFile("docker-compose.yml")
	require.NoError(t, err)
	assert.Empty(t, lintCompose("docker-compose.yml", compose, "."), "docker-compose.yml")
	by, err := os.ReadFile("balena.yml")
	require.NoError(t, err)
	assert.Empty(t, lintBalenaYML("balena.yml", by), "balena.yml")

	// The fleet's variables are the ones the entrypoint reads: a misspelt default would be
	// set on every device and read by nothing.
	entry, err := os.ReadFile("entrypoint.sh")
	require.NoError(t, err)
	var fleet struct {
		Data struct {
			Env []map[string]any `yaml:"applicationEnvironmentVariables"`
		} `yaml:"data"`
	}
	require.NoError(t, yaml.Unmarshal(by, &fleet))
	require.NotEmpty(t, fleet.Data.Env)
	for _, kv := range fleet.Data.Env {
		for name := range kv {
			assert.Contains(t, string(entry), "${"+name, "balena.yml sets %s, which entrypoint.sh never reads", name)
		}
	}
}

// The lint finds what balena would refuse or silently ignore.
func TestLintCatches(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "app"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app", "Dockerfile.template"), []byte("FROM scratch\n"), 0o644))
	const ok = "version: \"2.4\"\nvolumes: {data: {}}\nservices:\n  app:\n    build: ./app\n"
	require.Empty(t, lintCompose("ok.yml", []byte(ok), dir), "the baseline is clean")
	tests := []struct{ name, doc, want string }{
		{"compose 3", "version: \"3.8\"\nservices: {app: {build: ./app}}\n", "compose 2.x"},
		{"unquoted version", "version: 2.4\nservices: {app: {build: ./app}}\n", "must be quoted"},
		{"build outside", ok + "  b:\n    build: ../elsewhere\n", "outside the project"},
		{"build from git", ok + "  b:\n    build: https://github.com/x/y.git\n", "not from URLs"},
		{"no dockerfile", ok + "  b:\n    build: {context: ., dockerfile: Nope}\n", "has no Nope"},
		{"build key", ok + "  b:\n    build: {context: ./app, network: host}\n", "build.network is not supported"},
		{"bind mount", ok + "    volumes: [\"/var/run:/run\"]\n", "bind mounts are not supported"},
		{"undeclared volume", ok + "    volumes: [\"other:/data\"]\n", "not declared"},
		{"unsupported field", ok + "    container_name: x\n", "container_name is not supported by balena: the supervisor"},
		{"unknown field", ok + "    platform: linux/arm64\n", "platform is not a field balena supports"},
		{"network mode", ok + "    network_mode: container:x\n", "network_mode"},
		{"ports with host", ok + "    network_mode: host\n    ports: [\"1883:1883\"]\n", "mean nothing with network_mode host"},
		{"interpolation", ok + "    environment: {A: \"${HOME}\"}\n", "does not substitute variables"},
		{"feature label", ok + "    labels: {io.balena.features.dbuss: '1'}\n", "not a balena feature label"},
		{"feature value", ok + "    labels: [\"io.balena.features.dbus=yes\"]\n", "use '1' to enable"},
		{"strategy", ok + "    labels: {io.balena.update.strategy: now}\n", "update strategy"},
		{"depends_on map", ok + "    depends_on: {db: {condition: service_healthy}}\n", "only the list form"},
		{"device", ok + "    devices: [\"ttyUSB0\"]\n", "HOST_PATH"},
		{"grace", ok + "    stop_grace_period: soon\n", "not a duration"},
		{"top key", ok + "secrets: {}\n", "top-level \"secrets\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lintCompose("c.yml", []byte(tt.doc), dir)
			require.NotEmpty(t, got, "the lint should refuse:\n%s", tt.doc)
			assert.Contains(t, strings.Join(got, "\n"), tt.want)
			assert.Regexp(t, `^c\.yml:\d+: `, got[0], "findings name the file and line")
		})
	}

	const fleet = "name: x\ntype: sw.application\nversion: 1.0.0\ndata:\n  defaultDeviceType: raspberrypi4-64\n  supportedDeviceTypes: [raspberrypi4-64]\n"
	require.Empty(t, lintBalenaYML("b.yml", []byte(fleet)))
	for _, tt := range []struct{ name, doc, want string }{
		{"type", strings.Replace(fleet, "sw.application", "application", 1), "type must be"},
		{"version", strings.Replace(fleet, "1.0.0", "one", 1), "not a semantic version"},
		{"default", strings.Replace(fleet, "defaultDeviceType: raspberrypi4-64", "defaultDeviceType: raspberrypi3", 1), "not among"},
		{"device", strings.Replace(fleet, "[raspberrypi4-64]", "[raspberrypi4-64, toaster]", 1), "\"toaster\" is not a device type"},
		{"field", fleet + "slugg: x\n", "not a balena.yml field"},
		{"env name", fleet + "  applicationEnvironmentVariables: [{BALENA_X: 1}]\n", "reserved"},
		{"config name", fleet + "  applicationConfigVariables: [{UART: 1}]\n", "must start with BALENA_"},
	} {
		t.Run("balena.yml "+tt.name, func(t *testing.T) {
			got := lintBalenaYML("b.yml", []byte(tt.doc))
			require.NotEmpty(t, got, "the lint should refuse:\n%s", tt.doc)
			assert.Contains(t, strings.Join(got, "\n"), tt.want)
		})
	}
}
