// Package deploytest checks deployment files without the tools that run them, for the
// tests of deploy/ (the balena fleet, the cloud's container image and compose file):
//
//   - ParseDockerfile reads a Dockerfile into its stages, and BuildImage runs one the
//     way Docker would as far as a test can without Docker: every build stage for real
//     (COPY into a directory, RUN with sh and this machine's tools), then the final
//     stage's COPY instructions, whose sources must exist. The final image is a directory
//     with the environment, user, entrypoint and health check the Dockerfile declares.
//   - Findings, Pairs, Items and Lookup walk YAML nodes and report problems as
//     "file:line: what", for lints of compose files and their kin.
//   - ShellBlocks and ShellBlock read a README's ```sh code blocks, so that a test can
//     follow the steps an operator reads.
//
// Docker's own Dockerfile reference is the authority; what is not emulated fails the
// test that uses it, naming the instruction, rather than passing unchecked.
package deploytest
