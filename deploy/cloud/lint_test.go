package cloud

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

// The keys of the Compose Specification (compose-spec.io, the format `docker compose`
// reads), so that a misspelt key fails here instead of being ignored with a warning.
var (
	composeTopKeys     = []string{"version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models"}
	composeServiceKeys = []string{
		"annotations", "attach", "build", "blkio_config", "cpu_count", "cpu_percent", "cpu_shares",
		"cpu_period", "cpu_quota", "cpu_rt_runtime", "cpu_rt_period", "cpus", "cpuset", "cap_add",
		"cap_drop", "cgroup", "cgroup_parent", "command", "configs", "container_name",
		"credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices",
		"dns", "dns_opt", "dns_search", "domainname", "driver_opts", "entrypoint", "env_file",
		"environment", "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add",
		"healthcheck", "hostname", "image", "init", "ipc", "isolation", "labels", "label_file",
		"links", "logging", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness",
		"memswap_limit", "models", "network_mode", "networks", "oom_kill_disable", "oom_score_adj",
		"pid", "pids_limit", "platform", "ports", "post_start", "pre_stop", "privileged",
		"profiles", "provider", "pull_policy", "read_only", "restart", "runtime", "scale",
		"secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal",
		"storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user",
		"userns_mode", "uts", "volumes", "volumes_from", "working_dir",
	}
	composeBuildKeys = []string{"context", "dockerfile", "dockerfile_inline", "args", "ssh", "cache_from",
		"cache_to", "additional_contexts", "entitlements", "extra_hosts", "isolation", "privileged",
		"labels", "no_cache", "pull", "network", "shm_size", "target", "secrets", "tags", "ulimits", "platforms"}
	composeHealthKeys  = []string{"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
	composeDependsKeys = []string{"condition", "restart", "required"}
	composeConditions  = []string{"service_started", "service_healthy", "service_completed_successfully"}
	composeSecretKeys  = []string{"file", "environment", "external", "name"}
	composeRestarts    = []string{"no", "always", "on-failure", "unless-stopped"}
)

var (
	// ${NAME:-default} or ${NAME-default}: the file works with no .env beside it.
	interpolationRe = regexp.MustCompile(`\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)`)
	defaultedRe     = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*:?-[^}]*\}$`)
	secretishRe     = regexp.MustCompile(`(?i)(password|passwd|secret|token|api_?key|private_?key)`)
	pinnedImageRe   = regexp.MustCompile(`^[a-z0-9./_-]+:[A-Za-z0-9._-]+$`)
)

// lintCompose checks a compose file for this deployment's rules: the Compose
// Specification's keys; images pinned to a tag; variables only with defaults; secrets
// from files under secrets/ and never in the environment; bind mounts that exist and
// named volumes that are declared; dependencies on services that exist, and on health
// only where there is a health check. dir is the project directory.
func lintCompose(file string, doc []byte, dir string) []string {
	p := &deploytest.Findings{File: file}
	top := deploytest.ParseYAML(p, doc)
	if top == nil {
		return p.List
	}
	lintInterpolation(p, top)
	for _, kv := range deploytest.Pairs(top) {
		switch k := kv[0].Value; {
		case k == "version":
			p.Add(kv[0], "version is obsolete in the Compose Specification (compose warns and ignores it)")
		case strings.HasPrefix(k, "x-"):
		case !slices.Contains(composeTopKeys, k):
			p.Add(kv[0], "top-level %q is not a Compose Specification key", k)
		}
	}
	volumes, secrets := map[string]bool{}, map[string]bool{}
	for _, kv := range deploytest.Pairs(deploytest.Lookup(top, "volumes")) {
		volumes[kv[0].Value] = true
	}
	for _, kv := range deploytest.Pairs(deploytest.Lookup(top, "secrets")) {
		secrets[kv[0].Value] = true
		lintSecret(p, kv[0].Value, kv[1], dir)
	}
	services := deploytest.Lookup(top, "services")
	if len(deploytest.Pairs(services)) == 0 {
		p.Add(services, "no services")
	}
	svcs := map[string]*yaml.Node{}
	for _, kv := range deploytest.Pairs(services) {
		svcs[kv[0].Value] = kv[1]
	}
	for _, kv := range deploytest.Pairs(services) {
		lintService(p, kv[0].Value, kv[1], dir, svcs, volumes, secrets)
	}
	return p.List
}

func lintInterpolation(p *deploytest.Findings, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		for _, m := range interpolationRe.FindAllString(strings.ReplaceAll(n.Value, "$$", ""), -1) {
			if !defaultedRe.MatchString(m) {
				p.Add(n, "%s: give every variable a default (${NAME:-value}), so that the file works without a .env", m)
			}
		}
	}
	for _, c := range n.Content {
		lintInterpolation(p, c)
	}
}

func lintSecret(p *deploytest.Findings, name string, n *yaml.Node, dir string) {
	for _, kv := range deploytest.Pairs(n) {
		if !slices.Contains(composeSecretKeys, kv[0].Value) {
			p.Add(kv[0], "secrets.%s.%s is not a Compose Specification key", name, kv[0].Value)
		}
	}
	f := deploytest.Lookup(n, "file")
	if f == nil {
		p.Add(n, "secrets.%s: a file under ./secrets/ (README.md makes them)", name)
		return
	}
	if clean := path.Clean(f.Value); !strings.HasPrefix(clean, "secrets/") {
		p.Add(f, "secrets.%s: %q is not under ./secrets/, which git ignores", name, f.Value)
	}
	ignore, err := os.ReadFile(filepath.Join(dir, ".gitignore"))
	if err != nil || !slices.Contains(strings.Fields(string(ignore)), "/secrets/") {
		p.Add(f, "secrets.%s: .gitignore beside the compose file must ignore /secrets/", name)
	}
}

func lintService(p *deploytest.Findings, name string, svc *yaml.Node, dir string, svcs map[string]*yaml.Node, volumes, secrets map[string]bool) {
	at := "services." + name
	for _, kv := range deploytest.Pairs(svc) {
		if !slices.Contains(composeServiceKeys, kv[0].Value) {
			p.Add(kv[0], "%s.%s is not a Compose Specification key", at, kv[0].Value)
		}
	}
	build, image := deploytest.Lookup(svc, "build"), deploytest.Lookup(svc, "image")
	switch {
	case build == nil && image == nil:
		p.Add(svc, "%s: needs build or image", at)
	case build != nil:
		lintBuild(p, at, build, dir)
	case !pinnedImageRe.MatchString(image.Value) || strings.HasSuffix(image.Value, ":latest"):
		p.Add(image, "%s.image %q: pin a version tag", at, image.Value)
	}

	own := map[string]bool{}
	for _, s := range deploytest.Items(deploytest.Lookup(svc, "secrets")) {
		if s.Kind != yaml.ScalarNode || !secrets[s.Value] {
			p.Add(s, "%s.secrets: %q is not a top-level secret", at, s.Value)
		}
		own[s.Value] = true
	}
	env := deploytest.Lookup(svc, "environment")
	if env != nil && env.Kind != yaml.MappingNode {
		p.Add(env, "%s.environment: use the mapping form", at)
	}
	for _, kv := range deploytest.Pairs(env) {
		k, v := kv[0].Value, kv[1].Value
		if name, ok := strings.CutPrefix(v, "/run/secrets/"); ok {
			if !own[name] {
				p.Add(kv[1], "%s.environment.%s: the service does not list the secret %s", at, k, name)
			}
		} else if secretishRe.MatchString(k) && !strings.HasSuffix(k, "_FILE") {
			p.Add(kv[0], "%s.environment.%s: secrets go in files (a *_FILE variable naming /run/secrets/...), not in the environment", at, k)
		}
	}

	for _, v := range deploytest.Items(deploytest.Lookup(svc, "volumes")) {
		parts := strings.Split(v.Value, ":")
		switch {
		case v.Kind != yaml.ScalarNode || len(parts) < 2 || len(parts) > 3:
			p.Add(v, "%s.volumes: SOURCE:TARGET[:ro]", at)
		case strings.HasPrefix(parts[0], "/") || strings.HasPrefix(parts[0], "~"):
			p.Add(v, "%s.volumes %q: a bind mount from outside the project; use a path relative to the compose file or a named volume", at, v.Value)
		case strings.HasPrefix(parts[0], "."):
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(parts[0]))); err != nil {
				p.Add(v, "%s.volumes %q: %s does not exist beside the compose file", at, v.Value, parts[0])
			}
		case !volumes[parts[0]]:
			p.Add(v, "%s.volumes %q: volume %q is not declared under the top-level volumes", at, v.Value, parts[0])
		}
		if len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw" {
			p.Add(v, "%s.volumes %q: the mode is ro or rw", at, v.Value)
		}
	}

	if dep := deploytest.Lookup(svc, "depends_on"); dep != nil {
		var deps [][2]*yaml.Node
		switch dep.Kind {
		case yaml.MappingNode:
			deps = deploytest.Pairs(dep)
		case yaml.SequenceNode:
			for _, d := range dep.Content {
				deps = append(deps, [2]*yaml.Node{d, nil})
			}
		}
		for _, d := range deps {
			target, ok := svcs[d[0].Value]
			if !ok {
				p.Add(d[0], "%s.depends_on: no service %q", at, d[0].Value)
				continue
			}
			for _, kv := range deploytest.Pairs(d[1]) {
				if !slices.Contains(composeDependsKeys, kv[0].Value) {
					p.Add(kv[0], "%s.depends_on.%s.%s is not a Compose Specification key", at, d[0].Value, kv[0].Value)
				}
			}
			cond := deploytest.Lookup(d[1], "condition")
			if cond != nil && !slices.Contains(composeConditions, cond.Value) {
				p.Add(cond, "%s.depends_on.%s.condition %q: one of %s", at, d[0].Value, cond.Value, strings.Join(composeConditions, ", "))
			}
			if cond != nil && cond.Value == "service_healthy" && deploytest.Lookup(target, "healthcheck") == nil {
				p.Add(cond, "%s.depends_on.%s: service_healthy, but %s has no healthcheck", at, d[0].Value, d[0].Value)
			}
		}
	}

	if hc := deploytest.Lookup(svc, "healthcheck"); hc != nil {
		for _, kv := range deploytest.Pairs(hc) {
			if !slices.Contains(composeHealthKeys, kv[0].Value) {
				p.Add(kv[0], "%s.healthcheck.%s is not a Compose Specification key", at, kv[0].Value)
			}
		}
		test := deploytest.Lookup(hc, "test")
		if test == nil || (test.Kind == yaml.SequenceNode && (len(test.Content) == 0 ||
			!slices.Contains([]string{"CMD", "CMD-SHELL", "NONE"}, test.Content[0].Value))) {
			p.Add(hc, "%s.healthcheck.test: [CMD, ...], [CMD-SHELL, ...] or a shell string", at)
		}
		for _, k := range []string{"interval", "timeout", "start_period", "start_interval"} {
			if d := deploytest.Lookup(hc, k); d != nil {
				if _, err := time.ParseDuration(d.Value); err != nil {
					p.Add(d, "%s.healthcheck.%s %q is not a duration", at, k, d.Value)
				}
			}
		}
	}
	for _, port := range deploytest.Items(deploytest.Lookup(svc, "ports")) {
		if port.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			p.Add(port, "%s.ports %s: quote port mappings (YAML 1.1 reads some of them as numbers in base 60)", at, port.Value)
		}
	}
	if r := deploytest.Lookup(svc, "restart"); r != nil && !slices.Contains(composeRestarts, r.Value) {
		p.Add(r, "%s.restart %q: one of %s", at, r.Value, strings.Join(composeRestarts, ", "))
	}
	if g := deploytest.Lookup(svc, "stop_grace_period"); g != nil {
		if _, err := time.ParseDuration(g.Value); err != nil {
			p.Add(g, "%s.stop_grace_period %q is not a duration", at, g.Value)
		}
	}
}

func lintBuild(p *deploytest.Findings, at string, build *yaml.Node, dir string) {
	ctx, dockerfile := build, (*yaml.Node)(nil)
	if build.Kind == yaml.MappingNode {
		for _, kv := range deploytest.Pairs(build) {
			if !slices.Contains(composeBuildKeys, kv[0].Value) {
				p.Add(kv[0], "%s.build.%s is not a Compose Specification key", at, kv[0].Value)
			}
		}
		ctx, dockerfile = deploytest.Lookup(build, "context"), deploytest.Lookup(build, "dockerfile")
	}
	c := "."
	if ctx != nil {
		c = ctx.Value
	}
	fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(c)))
	if err != nil || !fi.IsDir() {
		p.Add(ctx, "%s.build.context %q is not a directory", at, c)
		return
	}
	df := "Dockerfile"
	if dockerfile != nil {
		df = dockerfile.Value
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(c), filepath.FromSlash(df))); err != nil {
		p.Add(build, "%s.build: no %s in the context %s", at, df, c)
	}
}

func TestCloudComposeLint(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	require.NoError(t, err)
	assert.Empty(t, lintCompose("docker-compose.yml", b, "."), "docker-compose.yml")
}

// The lint finds what would break the deployment or leak a secret.
func TestCloudComposeLintCatches(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "app"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM scratch\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("/secrets/\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "conf.yaml"), []byte("{}\n"), 0o644))
	const ok = `name: x
services:
  db:
    image: postgres:16.4
    healthcheck: {test: ["CMD", "pg_isready"], interval: 10s}
  app:
    build: {context: ./app, args: {V: "${V:-dev}"}}
    depends_on: {db: {condition: service_healthy}}
    environment: {PW_FILE: /run/secrets/pw}
    secrets: [pw]
    volumes: ["./conf.yaml:/etc/conf.yaml:ro", "data:/data"]
    ports: ["8080:8080"]
secrets:
  pw: {file: ./secrets/pw}
volumes:
  data: {}
`
	require.Empty(t, lintCompose("ok.yml", []byte(ok), dir), "the baseline is clean")
	tests := []struct{ name, from, to, want string }{
		{"version", "name: x", "version: \"3.8\"\nname: x", "obsolete"},
		{"top key", "volumes:\n  data: {}", "volume:\n  data: {}", `top-level "volume"`},
		{"service key", "    ports:", "    port:", "services.app.port is not"},
		{"latest", "postgres:16.4", "postgres:latest", "pin a version"},
		{"untagged", "postgres:16.4", "postgres", "pin a version"},
		{"no default", "${V:-dev}", "${V}", "give every variable a default"},
		{"bare variable", "${V:-dev}", "$V", "give every variable a default"},
		{"password in env", "{PW_FILE: /run/secrets/pw}", "{DB_PASSWORD: hunter2}", "secrets go in files"},
		{"token in env", "{PW_FILE: /run/secrets/pw}", "{API_TOKEN: abc}", "secrets go in files"},
		{"secret not listed", "{PW_FILE: /run/secrets/pw}", "{PW_FILE: /run/secrets/other}", "does not list the secret other"},
		{"undeclared secret", "secrets: [pw]", "secrets: [pw, other]", `"other" is not a top-level secret`},
		{"secret outside", "./secrets/pw", "./pw.txt", "not under ./secrets/"},
		{"secret from env", "{file: ./secrets/pw}", "{environment: PW}", "a file under ./secrets/"},
		{"missing bind", "./conf.yaml:", "./nope.yaml:", "does not exist"},
		{"absolute bind", "./conf.yaml:", "/etc/conf.yaml:", "outside the project"},
		{"undeclared volume", "data:/data", "other:/data", "not declared"},
		{"healthy without check", "    healthcheck: {test: [\"CMD\", \"pg_isready\"], interval: 10s}\n", "", "has no healthcheck"},
		{"condition", "service_healthy", "service_ready", "condition \"service_ready\""},
		{"depends on nothing", "{db: {condition", "{dbx: {condition", `no service "dbx"`},
		{"health test", `["CMD", "pg_isready"]`, `["RUN", "pg_isready"]`, "healthcheck.test"},
		{"health interval", "interval: 10s", "interval: often", "not a duration"},
		{"unquoted port", `["8080:8080"]`, "[8080:8080]", "quote port mappings"},
		{"no dockerfile", "{context: ./app,", "{context: ./app, dockerfile: Nope,", "no Nope"},
		{"context", "{context: ./app,", "{context: ./nowhere,", "not a directory"},
		{"build key", "{context: ./app,", "{context: ./app, squash: true,", "build.squash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Contains(t, ok, tt.from)
			doc := strings.Replace(ok, tt.from, tt.to, 1)
			got := lintCompose("c.yml", []byte(doc), dir)
			require.NotEmpty(t, got, "the lint should refuse:\n%s", doc)
			assert.Contains(t, strings.Join(got, "\n"), tt.want)
			assert.Regexp(t, `^c\.yml:\d+: `, got[0], "findings name the file and line")
		})
	}
	require.NoError(t, os.Remove(filepath.Join(dir, ".gitignore")))
	assert.Contains(t, strings.Join(lintCompose("c.yml", []byte(ok), dir), "\n"), "must ignore /secrets/")
}

// The files of this deployment name the same things: the database, its roles and their
// secrets, ports, mount points and the data source.
func TestCloudFilesAgree(t *testing.T) {
	c := readCompose(t)
	for _, s := range []string{"db", "ph-cloud", "grafana"} {
		require.Contains(t, c.Services, s)
	}
	db, cloud, grafana := c.Services["db"], c.Services["ph-cloud"], c.Services["grafana"]

	// TimescaleDB on PostgreSQL 15 or 16, preloaded.
	assert.Regexp(t, `^timescale/timescaledb(-ha)?:[0-9.]+-pg1[56](\.[0-9]+)?$`, db.Image)
	preload := ""
	for i, a := range db.Command {
		if v, ok := strings.CutPrefix(a, "shared_preload_libraries="); ok && i > 0 && db.Command[i-1] == "-c" {
			preload = v
		}
	}
	assert.Contains(t, strings.Split(preload, ","), "timescaledb", "the db command preloads TimescaleDB")

	// The roles the first-start script makes are the ones ph-cloud and Grafana log in as,
	// with the secrets that the script reads for them.
	script, err := os.ReadFile("initdb/10-purehealth.sh")
	require.NoError(t, err)
	roles := map[string]string{} // role -> the environment variable naming its password file
	for _, m := range regexp.MustCompile(`CREATE ROLE (\w+) LOGIN PASSWORD :'(\w+)'`).FindAllStringSubmatch(string(script), -1) {
		v := regexp.MustCompile(`\\set ` + m[2] + " `cat \"\\$(\\w+)\"`").FindStringSubmatch(string(script))
		require.NotNil(t, v, "the script sets %s from a file", m[2])
		roles[m[1]] = v[1]
	}
	require.Len(t, roles, 2, "an owner and a reader")
	secretOf := func(env map[string]string, key string) string {
		t.Helper()
		name, ok := strings.CutPrefix(env[key], "/run/secrets/")
		require.True(t, ok, "%s names a compose secret", key)
		return name
	}

	cfg, err := os.ReadFile("cloud.yaml")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^database_url:\s*"postgres://(\w+)@([\w-]+):(\d+)/(\w+)\?`).FindSubmatch(cfg)
	require.NotNil(t, m, "cloud.yaml's database_url: postgres://ROLE@SERVICE:PORT/DB?..., no password")
	cloudRole, cloudHost, cloudDB := string(m[1]), string(m[2]), string(m[4])
	assert.Equal(t, "db", cloudHost, "ph-cloud reaches the db service")
	assert.Equal(t, db.Environment["POSTGRES_DB"], cloudDB)
	require.Contains(t, roles, cloudRole, "ph-cloud logs in as a role the script makes")
	assert.Equal(t, secretOf(db.Environment, roles[cloudRole]), secretOf(cloud.Environment, "PH_DB_PASSWORD_FILE"),
		"ph-cloud's password file is the secret its role was made with")
	entry, err := os.ReadFile("entrypoint.sh")
	require.NoError(t, err)
	assert.Contains(t, string(entry), "${PH_DB_PASSWORD_FILE", "the entrypoint reads the variable compose sets")

	ds := readDatasource(t)
	require.Contains(t, roles, ds.User, "Grafana logs in as a role the script makes")
	assert.NotEqual(t, cloudRole, ds.User, "Grafana has its own role")
	assert.Equal(t, db.Environment["POSTGRES_DB"], ds.JSONData.Database)
	assert.Equal(t, "db:5432", ds.URL)
	assert.Equal(t, "grafana-postgresql-datasource", ds.Type)
	assert.False(t, ds.JSONData.TimescaleDB, "plain-SQL macros: the dashboards run on both storage layouts")
	sm := fileSecretRe.FindStringSubmatch(ds.SecureJSONData.Password)
	require.NotNil(t, sm, "the data source's password is $__file{/run/secrets/...}")
	assert.Equal(t, secretOf(db.Environment, roles[ds.User]), sm[1], "Grafana's password file is the secret its role was made with")
	assert.Contains(t, grafana.Secrets, sm[1])
	assert.Contains(t, grafana.Secrets, secretOf(grafana.Environment, "GF_SECURITY_ADMIN_PASSWORD__FILE"))

	// ph-cloud: the port it listens on is the one published, its configuration where the
	// image reads it.
	port := listenPort(t)
	require.Len(t, cloud.Ports, 1)
	assert.True(t, strings.HasSuffix(cloud.Ports[0], ":"+port), "ph-cloud publishes container port %s: %s", port, cloud.Ports[0])
	assert.Equal(t, "./cloud.yaml", c.mountSource("ph-cloud", "/etc/ph-cloud/cloud.yaml"))
	file, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	assert.Contains(t, string(file), "ENV PH_CLOUD_CONFIG=/etc/ph-cloud/cloud.yaml")

	// Grafana: provisioning where Grafana reads it, dashboards where the provider looks.
	assert.Equal(t, "./grafana/provisioning", c.mountSource("grafana", "/etc/grafana/provisioning"))
	b, err := os.ReadFile("grafana/provisioning/dashboards/ph-cloud.yaml")
	require.NoError(t, err)
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	require.NoError(t, yaml.Unmarshal(b, &prov))
	require.Equal(t, 1, prov.APIVersion)
	require.Len(t, prov.Providers, 1)
	assert.Equal(t, "file", prov.Providers[0].Type)
	src := c.mountSource("grafana", prov.Providers[0].Options.Path)
	assert.Equal(t, "./grafana/dashboards", src, "the dashboards are mounted where the provider reads them")
	dashboards, err := filepath.Glob(filepath.Join(src, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, dashboards)
	for _, f := range dashboards {
		d := loadDashboard(t, f)
		assert.NotEmpty(t, d.UID, "%s: a fixed uid keeps links stable", f)
		assert.NotEmpty(t, d.queries(t, ds.UID), "%s queries the provisioned data source", f)
	}
}
