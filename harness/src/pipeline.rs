//! Wires the pipeline together for `clsbench run`.
