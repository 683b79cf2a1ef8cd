//! A decoded image dataset: `n` RGB images of one size, stored HWC, and their labels.

use crate::{input_error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    pub height: usize,
    pub width: usize,
    /// `n × height × width × 3` bytes, image-major, HWC.
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    /// Class names in label order.
    pub classes: Vec<String>,
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_bytes(&self) -> usize {
        self.height * self.width * 3
    }

    /// Image `i`'s HWC bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.image_bytes();
        &self.pixels[i * s..(i + 1) * s]
    }

    /// The images at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Images {
        Images {
            height: self.height,
            width: self.width,
            pixels: rows.iter().flat_map(|&r| self.image(r)).copied().collect(),
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            classes: self.classes.clone(),
        }
    }

    /// The images resized to `height × width` (bilinear, as `torchvision.transforms.Resize`), e.g.
    /// Tiny-ImageNet's 64 × 64 images for a 32 × 32 CIFAR model ("TinyImageNet (resize)").
    pub fn resized(&self, height: usize, width: usize) -> Images {
        if (height, width) == (self.height, self.width) {
            return self.clone();
        }
        let pixels = (0..self.len())
            .flat_map(|i| {
                let img = image::RgbImage::from_raw(self.width as u32, self.height as u32, self.image(i).to_vec())
                    .expect("sizes checked when read");
                image::imageops::resize(&img, width as u32, height as u32, image::imageops::FilterType::Triangle)
                    .into_raw()
            })
            .collect();
        Images { height, width, pixels, labels: self.labels.clone(), classes: self.classes.clone() }
    }

    /// Assembles decoded images, checking that they all have the first one's size.
    pub(crate) fn from_decoded(decoded: Vec<(String, i64, image::RgbImage)>, classes: Vec<String>) -> Result<Images> {
        let Some(first) = decoded.first() else {
            return Err(input_error(classes.join(", "), "no images"));
        };
        let (width, height) = first.2.dimensions();
        let mut pixels = Vec::with_capacity(decoded.len() * (width * height * 3) as usize);
        let mut labels = Vec::with_capacity(decoded.len());
        for (name, label, img) in decoded {
            if img.dimensions() != (width, height) {
                let (w, h) = img.dimensions();
                return Err(input_error(name, format!("image is {w}×{h}, the others {width}×{height}")));
            }
            pixels.extend_from_slice(img.as_raw());
            labels.push(label);
        }
        Ok(Images { height: height as usize, width: width as usize, pixels, labels, classes })
    }
}
