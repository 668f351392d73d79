package testtool

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records a skip or a failure instead of ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

func TestLookPath(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("no sh to find: %v", err)
	}
	tests := []struct {
		name        string
		require     string
		names       []string
		want        string
		wantSkip    bool
		wantFailure bool
	}{
		{name: "found", names: []string{"sh"}, want: sh},
		{name: "found under another name", names: []string{"ph-no-such-tool", "sh"}, want: sh},
		{name: "missing: skipped", names: []string{"ph-no-such-tool"}, wantSkip: true},
		{name: "missing but required: failed", require: "1", names: []string{"ph-no-such-tool"}, wantFailure: true},
		{name: "only 1 requires", require: "yes", names: []string{"ph-no-such-tool"}, wantSkip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvRequire, tt.require)
			r := &recorder{TB: t}
			got := LookPath(r, "ph-tools", tt.names...)
			assert.Equal(t, tt.want, got)
			if tt.wantSkip {
				require.NotEmpty(t, r.skipped, "the test is skipped")
				assert.Contains(t, r.skipped, "apt-get install ph-tools", "the message names the package")
			} else {
				assert.Empty(t, r.skipped)
			}
			if tt.wantFailure {
				require.NotEmpty(t, r.failed, "the test fails")
				assert.Contains(t, r.failed, "PH_REQUIRE_TOOLS=1")
				assert.Contains(t, r.failed, "apt-get install ph-tools")
			} else {
				assert.Empty(t, r.failed)
			}
		})
	}
}
