package notify

import "github.com/purehealth/purehealth/cloud/internal/store"

// filter decides which transitions a channel is for.
type filter struct {
	channel    string
	anyStation bool
	stations   map[string]bool
	severities map[string]bool
	on         map[string]bool
}

func newFilter(c Channel) filter {
	set := func(vs []string) map[string]bool {
		m := make(map[string]bool, len(vs))
		for _, v := range vs {
			m[v] = true
		}
		return m
	}
	f := filter{channel: c.Name, stations: set(c.Stations), severities: set(c.Severities), on: set(c.On)}
	f.anyStation = f.stations["*"]
	return f
}

// match reports whether n goes to the channel. A channel's own notify_failing alert
// never does: it could only arrive once the channel works again, when it is resolved.
func (f filter) match(n store.Notification) bool {
	if n.Rule == store.RuleNotifyFailing && n.Key == store.NotifyFailingKey(f.channel) {
		return false
	}
	return (f.anyStation || f.stations[n.Station]) && f.severities[n.Severity] && f.on[n.Transition]
}
