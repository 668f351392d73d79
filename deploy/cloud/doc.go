// Package cloud is the deployment of ph-cloud with Docker Compose: the container image
// (Dockerfile, entrypoint.sh), the compose file with TimescaleDB and Grafana, the
// database's first-start script (initdb/), ph-cloud's configuration for it (cloud.yaml)
// and Grafana's provisioning (grafana/). README.md is the operator's guide.
//
// Its tests keep these files working without Docker:
//
//   - the build context is staged from exactly what Dockerfile.dockerignore lets in, and
//     the Dockerfile's build stage is run from it instruction by instruction (for amd64
//     and arm64 with `make cloud-image-check`); the runtime stage's files, user, port and
//     health check are checked against the configuration (image_test.go);
//   - the compose file is linted for the Compose Specification's keys and for the ways
//     this deployment's files must agree: secrets, mounts, roles, ports (lint_test.go);
//   - README.md is followed with the image so built on a real PostgreSQL: secrets, the
//     first-start script, migrate and serve through the entrypoint, the health check,
//     stations registered and data ingested over the API; then every SQL query of the
//     Grafana dashboard runs, expanded as Grafana expands it, as Grafana's read-only
//     role through the provisioned data source (stack_test.go, grafana_test.go).
package cloud
