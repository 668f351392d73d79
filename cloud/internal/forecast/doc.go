// Package forecast predicts the next hours of a station's parameter (or its WQI) with
// 80 % and 95 % prediction intervals, and says how much to trust them.
//
// Make takes the readings of one series and a time of issue and:
//
//  1. keeps the good readings and makes them an hourly series (package hourly: the median
//     of each UTC hour, isolated outlier hours dropped, gaps left as gaps), on the log
//     scale for parameters that vary by factors (hourly.TransformFor); after a silence of
//     more than three days only the history since counts;
//  2. backtests seasonal naive, drift and — with a week of history or more — additive
//     Holt-Winters with a 24-hour season, with and without a damped trend (ETS(A,N,A) and
//     ETS(A,Ad,A) fitted by maximum likelihood; Hyndman & Athanasopoulos, Forecasting:
//     Principles and Practice, ch. 8), by rolling origin over the last quarter of the
//     history (one day to one week);
//  3. picks the method with the lowest MASE against seasonal naive, refits it on all the
//     history and forecasts the next 24 hours, with intervals from the quantiles of its own
//     multi-step errors (see intervals for why not the model's formulas); a forecast that
//     goes far beyond anything the last week showed is not believed, and the next best
//     method is taken (see implausible).
//
// The result serialises to the forecast contract of design §5a. Its skill (MASE, the
// coverage of both intervals, the number of backtest points) is that of the chosen model
// in the backtest; Result.Why says why it was chosen and Result.Candidates how every
// method did. With too little history (less than three days, or too few hours observed)
// there is no forecast and the error says why; between three and seven days only the
// baselines compete.
//
// Breach reads a forecast against a limit (shared/criteria) and says whether and when its
// 80 % interval crosses it, in the words of an early warning.
//
// Everything here is pure computation on in-memory values: no I/O, no clock, no
// goroutines of its own (gonum's optimiser runs its own for the length of a call). Every
// function is safe for concurrent use.
//
// # Caveats
//
// Hours are UTC hours; the daily season is 24 of them whatever the time zone. A forecast
// point is the median of an hour's readings, not an instantaneous value. The methods know
// the daily cycle and recent level, not the weather: a monsoon spate or a pollution event
// arrives as a surprise, which the intervals' heavy tails account for only on average.
package forecast
