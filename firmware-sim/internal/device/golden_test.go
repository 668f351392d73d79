package device

import "github.com/purehealth/purehealth/shared/telemetry"

// goldenPune is MH-PUNE-001, seed 1, at 2025-11-13T12:00:00Z (17:30 IST), each value rounded
// to its probe resolution.
var goldenPune = map[telemetry.Param]float64{
	telemetry.BOD: 22.3, telemetry.Chla: 33.1, telemetry.Conductivity: 647, telemetry.DO: 4.07,
	telemetry.FC: 90252, telemetry.PH: 7.69, telemetry.TDS: 413, telemetry.Temp: 26.15,
	telemetry.Turbidity: 25.1, telemetry.Discharge: 13.6, telemetry.Rainfall: 0,
	telemetry.WaterLevel: 543.14, telemetry.AirTemp: 28,
}
