//! Board support for NVIDIA Jetson boards (Xavier NX first): INA3221 power sensing,
//! cpufreq and GPU devfreq knobs implementing the traits of [`ecoedge_core::board`].
//!
//! Built out by the Jetson board-support work; this crate exists now so the
//! workspace layout is the final one.
