// Package balena is the fleet deployment of ph-agent on balena devices: the files of this
// directory (see README.md) and the tests that keep them working without Docker or a
// balena account:
//
//   - the compose file and balena.yml are checked against the subset of Docker Compose
//     and the fields balena accepts (lint_test.go);
//   - the build context is assembled from context.list by stage.sh, exactly as push.sh
//     does, and the Dockerfile's build stage is run from it instruction by instruction for
//     each balena architecture (build_test.go; all of them with `make balena-check`);
//   - the README's steps are followed with the built agent and the real entrypoint: first
//     start from device variables, token rotation, the technician's CLI, editing and
//     re-rendering the configuration (readme_test.go).
package balena
