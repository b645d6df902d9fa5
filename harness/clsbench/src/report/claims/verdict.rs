//! The verdict rules, as pure functions of our number, its interval and the claim.
//!
//! With a confidence interval [lo, hi] (a model's percentile bootstrap CI, or the paired CI of
//! a difference):
//! - `~= c ± t`: reproduced when |ours − c| <= t or c lies inside the CI; contradicted when
//!   the CI lies entirely outside [c − t, c + t]; otherwise inconclusive.
//! - `> c` (and `>=`): reproduced when the whole CI lies above c (at or above for `>=`);
//!   contradicted when it lies on the other side (hi <= c for `>`, hi < c for `>=`): the
//!   opposite direction is significant; otherwise inconclusive. `<` and `<=` mirror this.
//!   "A beats B" is `difference > 0` on the paired CI.
//!
//! Without an interval (counts such as zero-F1 classes, speed, parameter shares) the point is
//! compared directly (with the tolerance for `~=`) and the reason says that no CI was used.

use super::file::{fmt_value, Op, Tolerance};
pub use clsbench_stats::intervals::Interval;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Reproduced,
    Contradicted,
    Inconclusive,
    NotRun,
    HardwareDiffers,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Reproduced,
        Verdict::Contradicted,
        Verdict::Inconclusive,
        Verdict::NotRun,
        Verdict::HardwareDiffers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotRun => "not-run",
            Verdict::HardwareDiffers => "hardware-differs",
        }
    }
}

/// Our number for a claim: the point estimate and, when the statistic has one, its CI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ours {
    pub point: f64,
    pub ci: Option<Interval>,
}

/// Tolerances are compared with this slack so that a difference printed as exactly the
/// tolerance (0.5747 − 0.5697 = 0.005) is not lost to binary rounding.
const EPS: f64 = 1e-12;

/// The verdict on "ours `op` claimed (± tolerance)" and a one-line reason.
pub fn judge(ours: Ours, op: Op, claimed: f64, tolerance: Option<Tolerance>) -> (Verdict, String) {
    let c = fmt_value(claimed);
    let p = fmt_value(ours.point);
    let Some(ci) = ours.ci else {
        return judge_point(ours.point, op, claimed, tolerance);
    };
    let range = format!("[{}, {}]", fmt_value(ci.lower), fmt_value(ci.upper));
    match op {
        Op::Approx => {
            let tol = tolerance.map_or(0.0, |t| t.absolute(claimed));
            let t = fmt_value(tol);
            let gap = (ours.point - claimed).abs();
            if gap <= tol + EPS {
                (
                    Verdict::Reproduced,
                    format!("ours {p} is within ±{t} of the claimed {c}"),
                )
            } else if ci.lower <= claimed && claimed <= ci.upper {
                (
                    Verdict::Reproduced,
                    format!("the claimed {c} lies inside our CI {range}"),
                )
            } else if ci.upper < claimed - tol - EPS || ci.lower > claimed + tol + EPS {
                (
                    Verdict::Contradicted,
                    format!("our CI {range} excludes the claimed {c} ± {t}"),
                )
            } else {
                (
                    Verdict::Inconclusive,
                    format!(
                        "our CI {range} misses {c} but reaches {c} ± {t}; ours {p} is {} away",
                        fmt_value(gap)
                    ),
                )
            }
        }
        Op::Gt | Op::Ge => {
            let holds = if op == Op::Gt {
                ci.lower > claimed
            } else {
                ci.lower >= claimed
            };
            let opposite = if op == Op::Gt {
                ci.upper <= claimed
            } else {
                ci.upper < claimed
            };
            if holds {
                (Verdict::Reproduced, format!("our CI {range} lies above {c}"))
            } else if opposite {
                (
                    Verdict::Contradicted,
                    format!("our CI {range} lies below {c}: the opposite holds"),
                )
            } else {
                (
                    Verdict::Inconclusive,
                    format!("our CI {range} contains {c}: no significant direction"),
                )
            }
        }
        Op::Lt | Op::Le => {
            let holds = if op == Op::Lt {
                ci.upper < claimed
            } else {
                ci.upper <= claimed
            };
            let opposite = if op == Op::Lt {
                ci.lower >= claimed
            } else {
                ci.lower > claimed
            };
            if holds {
                (Verdict::Reproduced, format!("our CI {range} lies below {c}"))
            } else if opposite {
                (
                    Verdict::Contradicted,
                    format!("our CI {range} lies above {c}: the opposite holds"),
                )
            } else {
                (
                    Verdict::Inconclusive,
                    format!("our CI {range} contains {c}: no significant direction"),
                )
            }
        }
    }
}

fn judge_point(point: f64, op: Op, claimed: f64, tolerance: Option<Tolerance>) -> (Verdict, String) {
    let (p, c) = (fmt_value(point), fmt_value(claimed));
    let (holds, what) = match op {
        Op::Approx => {
            let tol = tolerance.map_or(0.0, |t| t.absolute(claimed));
            (
                (point - claimed).abs() <= tol + EPS,
                format!("within ±{} of {c}", fmt_value(tol)),
            )
        }
        Op::Gt => (point > claimed, format!("above {c}")),
        Op::Ge => (point >= claimed, format!("at or above {c}")),
        Op::Lt => (point < claimed, format!("below {c}")),
        Op::Le => (point <= claimed, format!("at or below {c}")),
    };
    if holds {
        (
            Verdict::Reproduced,
            format!("ours {p} is {what} (no CI for this number: point compared)"),
        )
    } else {
        (
            Verdict::Contradicted,
            format!("ours {p} is not {what} (no CI for this number: point compared)"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ci(point: f64, lower: f64, upper: f64) -> Ours {
        Ours {
            point,
            ci: Some(Interval { lower, upper }),
        }
    }

    fn v(ours: Ours, op: Op, claimed: f64, tol: Option<f64>) -> Verdict {
        judge(ours, op, claimed, tol.map(Tolerance::Absolute)).0
    }

    #[test]
    fn approx_reproduced_by_tolerance_or_by_ci() {
        // Within tolerance although outside the (narrow) CI.
        assert_eq!(
            v(with_ci(0.5747, 0.5740, 0.5750), Op::Approx, 0.5697, Some(0.005)),
            Verdict::Reproduced
        );
        // Outside tolerance but the claim is inside the CI.
        assert_eq!(
            v(with_ci(0.55, 0.53, 0.575), Op::Approx, 0.5697, Some(0.005)),
            Verdict::Reproduced
        );
    }

    #[test]
    fn approx_contradicted_only_when_the_ci_clears_the_tolerance_band() {
        assert_eq!(
            v(with_ci(0.50, 0.48, 0.52), Op::Approx, 0.5697, Some(0.005)),
            Verdict::Contradicted
        );
        // CI ends at 0.567 > 0.5697 − 0.005: it reaches the band, so no contradiction.
        let (verdict, reason) = judge(
            with_ci(0.55, 0.53, 0.567),
            Op::Approx,
            0.5697,
            Some(Tolerance::Absolute(0.005)),
        );
        assert_eq!(verdict, Verdict::Inconclusive, "{reason}");
        // Above the claim, symmetric.
        assert_eq!(
            v(with_ci(0.64, 0.62, 0.66), Op::Approx, 0.5697, Some(0.005)),
            Verdict::Contradicted
        );
    }

    #[test]
    fn relative_tolerance_scales_with_the_claim() {
        let ours = Ours { point: 23.0, ci: None };
        assert_eq!(
            judge(ours, Op::Approx, 19.0, Some(Tolerance::Relative(0.25))).0,
            Verdict::Reproduced
        );
        assert_eq!(
            judge(ours, Op::Approx, 19.0, Some(Tolerance::Relative(0.20))).0,
            Verdict::Contradicted
        );
    }

    #[test]
    fn direction_claims_need_the_ci_to_exclude_the_threshold() {
        assert_eq!(v(with_ci(0.03, 0.01, 0.05), Op::Gt, 0.0, None), Verdict::Reproduced);
        assert_eq!(v(with_ci(0.004, -0.01, 0.02), Op::Gt, 0.0, None), Verdict::Inconclusive);
        assert_eq!(
            v(with_ci(-0.03, -0.05, -0.01), Op::Gt, 0.0, None),
            Verdict::Contradicted
        );
        // A CI touching the threshold: `>` cannot hold, `>=` is not contradicted.
        assert_eq!(v(with_ci(-0.02, -0.04, 0.0), Op::Gt, 0.0, None), Verdict::Contradicted);
        assert_eq!(v(with_ci(-0.02, -0.04, 0.0), Op::Ge, 0.0, None), Verdict::Inconclusive);
        assert_eq!(v(with_ci(0.02, 0.0, 0.04), Op::Ge, 0.0, None), Verdict::Reproduced);
        assert_eq!(v(with_ci(-9.0, -12.0, -6.0), Op::Lt, 0.0, None), Verdict::Reproduced);
        assert_eq!(v(with_ci(-9.0, -12.0, 1.0), Op::Le, 0.0, None), Verdict::Inconclusive);
        assert_eq!(v(with_ci(3.0, 1.0, 5.0), Op::Le, 0.0, None), Verdict::Contradicted);
    }

    #[test]
    fn points_without_ci_are_compared_directly_and_say_so() {
        let (verdict, reason) = judge(
            Ours { point: 37.0, ci: None },
            Op::Approx,
            37.0,
            Some(Tolerance::Absolute(0.0)),
        );
        assert_eq!(verdict, Verdict::Reproduced);
        assert!(reason.contains("no CI"), "{reason}");
        assert_eq!(
            judge(Ours { point: -9.0, ci: None }, Op::Lt, 0.0, None).0,
            Verdict::Reproduced
        );
        assert_eq!(
            judge(Ours { point: 0.0, ci: None }, Op::Lt, 0.0, None).0,
            Verdict::Contradicted
        );
        assert_eq!(
            judge(
                Ours { point: 41.0, ci: None },
                Op::Approx,
                37.0,
                Some(Tolerance::Absolute(3.0))
            )
            .0,
            Verdict::Contradicted
        );
    }
}
