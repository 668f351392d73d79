// Package upstreamsim simulates the services outside the station network that the cloud
// reads: the data.gov.in Open Government Data gateway (OGD) with a CPCB river-monitoring
// resource, and a Copernicus-style Statistical API with its OAuth2 token endpoint
// (Statistics). They serve the shapes the real services send — strings for numbers, "NA" and
// "BDL", "NaN" as a string for a masked interval, EXECUTION_ERROR intervals, the
// gateway's error bodies, retry-after in milliseconds — so that the cloud's clients meet
// them in tests and in the demo.
//
// Values follow the device package's models of the four Maharashtra stations, so a lab
// BOD from the OGD simulator, a turbidity from satellite reflectances and a probe's
// reading of the same river agree in magnitude.
//
// Bodies are encoded here from the services' published shapes, not with the cloud's
// decoders, so that a bug shared by an encoder and a decoder cannot hide.
//
// Faults on demand: POST /_sim/fault with kind=429|500|502|503|slow|malformed, count=N
// (default 1) and optionally path=PREFIX (only requests whose path starts with it) and
// offset=N (only OGD pages at that offset) queues a fault for the next matching requests;
// DELETE /_sim/fault clears the queue; GET /_sim/fault lists it. Config.Fault and
// Config.FaultRate add random faults. 429 carries Retry-After (seconds at the OGD
// gateway, milliseconds at the Statistical API), 5xx an nginx error page, slow an answer
// after Config.SlowDelay, malformed a page cut in half. POST /_sim/revise republishes the
// OGD resource at once with its corrected value.
//
// A server serves once: build it with NewOGD or NewStatistics, then Serve, which returns after
// ctx ends and its connections are closed. Handlers are safe for concurrent use.
package upstreamsim
