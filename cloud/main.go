// Command ph-cloud is the Pure Health cloud service. This build has no commands yet: it
// prints what it will offer and exits with a usage error rather than pretend to work.
package main

import (
	"fmt"
	"os"
)

const usage = `ph-cloud: the Pure Health cloud service (ingest, storage, dashboards).

This build does not include the cloud service yet; station agents keep every reading
locally until it does. Planned commands: serve, migrate, station add|list|rotate-token.
`

func main() {
	fmt.Fprint(os.Stderr, usage)
	os.Exit(2)
}
