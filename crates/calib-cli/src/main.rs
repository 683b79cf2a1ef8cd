fn main() {
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).softmax(0, tch::Kind::Float);
    t.print();
}
