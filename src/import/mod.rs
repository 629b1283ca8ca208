//! Converters from other tools' pipeline files into pipeline.toml (`mlrun import`).

pub mod dvc;
