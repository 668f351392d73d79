// Package satellite estimates water quality at our stations from satellite images,
// through a Statistical API (Sentinel Hub / Copernicus Data Space Ecosystem): Sentinel-2
// L2A turbidity (Nechad et al. 2016, or the Dogliotti et al. 2015 switching algorithm)
// and chlorophyll-a (the NDCI of Mishra & Mishra 2012), and Landsat 8/9 Collection-2
// Level-2 water surface temperature (ST_B10).
//
// A Client, built with New, implements upstream.Source. For each station's Area (a circle
// around the station or a polygon along the river), each collection and each week it
// asks for daily statistics of the water pixels: scenes above the cloud-cover limit are
// left out by the service, clouds, shadows and land by the evalscript's mask; a scene
// needs MinPixels valid pixels. The week's value of an estimate is the median of its
// scene values, stamped at the week's start (Monday 00:00 UTC), with the newest scene's
// date, the number of scenes and of pixels in its Origin. A week gets a new value while
// new scenes arrive (the store keeps it as a revision) and is final Settle after its end.
//
// Responses of final weeks go to a Cache (FileCache keeps them on disk), so a restarted
// service asks for nothing it has already read. Tokens come from the OAuth2
// client-credentials grant and are replaced a minute before they expire. The service's
// 429 carries retry-after in milliseconds, which the retries honour.
//
// Every formula is in formulas.go with its source and the worked values of the science
// notes as tests.
//
// # Caveats
//
// Estimates use the mean reflectances of each scene's water pixels rather than per-pixel
// values; the chlorophyll-a calibration comes from US estuaries and is indicative for
// Deccan rivers; L2A reflectance stands in for water-leaving reflectance (no sky-glint
// correction); Landsat's ST_B10 is the water's skin temperature.
package satellite
