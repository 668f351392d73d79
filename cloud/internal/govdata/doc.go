// Package govdata reads what Indian government programmes publish about our rivers: the
// data.gov.in Open Government Data API (CPCB's National Water Quality Monitoring
// Programme, MPCB), Central Water Commission gauges (water level, discharge) through
// India-WRIS, and India Meteorological Department stations (rainfall, air temperature).
//
// One Client per configured source, built with New from Options (start from
// Defaults(kind)), implements upstream.Source: each Fetch reads one round and turns
// records into readings with source=api, our station id (from the source's station
// mapping), the parameter in its canonical unit, the sampling time, and the upstream
// record's id. Where, which and what are configuration: field names, station codes, time
// formats and units differ from one resource to the next.
//
// What the portals really send is messier than their documentation: numbers as strings
// ("961.61") on most resources and as JSON numbers on some, "NA", "NAN", "-", "" and null
// for missing values, "BDL" and "<0.5" below the detection limit, ">1600" above a
// method's range, codes as numbers or strings. Every such value is counted by kind
// (MissingNA, BelowDetection, ...) and none is stored, least of all as 0.
//
// # Incremental rounds
//
// The OGD gateway cannot filter by date, but each page states when the resource was last
// published (updated_date, updated): a round whose first page shows the stamp of the
// last round stops there (Batch.Unchanged). A republished resource is read whole, and
// the store tells corrected values (revisions) from unchanged ones. With FilterStations
// the gateway's filters[field]=value narrows the reading to our stations. CWC and IMD
// requests carry a time window that starts a little before the newest record seen.
//
// # Caveats
//
// India-WRIS, CWC and IMD publish no documented JSON API. Their defaults follow the shapes
// in testdata/ (field names as those services print them); endpoint, method, paging,
// window parameters and the field mapping are all configurable for when they change.
package govdata
