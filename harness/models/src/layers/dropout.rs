//! Seeded inverted dropout.

use candle_core::{Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};

/// Inverted dropout with a seeded stream shared by every dropout site of one model, so that a
/// training run is reproducible from the suite seed (candle's own dropout draws from an
/// unseeded thread RNG).
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f64,
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl Dropout {
    pub fn new(p: f64, rng: Arc<Mutex<ChaCha8Rng>>) -> Dropout {
        Dropout { p, rng }
    }

    pub fn p(&self) -> f64 {
        self.p
    }

    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(xs.clone());
        }
        if self.p >= 1.0 {
            return xs.zeros_like();
        }
        let n = xs.elem_count();
        let keep_scale = (1.0 / (1.0 - self.p)) as f32;
        // Compare raw u32 draws to a threshold: one draw per element, no float conversion.
        let threshold = (self.p * (u32::MAX as f64 + 1.0)) as u64;
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("dropout rng poisoned".into()))?;
            (0..n)
                .map(|_| {
                    if u64::from(rng.gen::<u32>()) >= threshold {
                        keep_scale
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
        xs.mul(&mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use rand::SeedableRng;

    #[test]
    fn dropout_is_seeded_and_scaled() {
        let x = Tensor::ones((1000,), DType::F32, &Device::Cpu).unwrap();
        let make = || Dropout::new(0.25, Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(9))));
        let a: Vec<f32> = make().forward(&x, true).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = make().forward(&x, true).unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        let kept = a.iter().filter(|&&v| v > 0.0).count();
        assert!((700..800).contains(&kept), "kept {kept} of 1000 at p = 0.25");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        assert_eq!(
            make().forward(&x, false).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; 1000]
        );
    }
}
