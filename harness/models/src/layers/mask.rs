//! Additive attention masks.

use candle_core::DType;

/// The most negative finite value of `dtype`: the additive mask for "may not attend". A
/// finite value (as transformers uses) keeps fully-masked rows (left padding under a causal
/// mask) uniform instead of NaN.
pub fn mask_min(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65_504.0,
        DType::BF16 => -3.389_531_389_251_535_5e38,
        DType::F64 => f64::MIN,
        _ => f64::from(f32::MIN),
    }
}
