//! `provision`: the speech-to-text and video-on-demand systems, once built by hand in the AWS
//! console, as idempotent AWS SDK calls.

pub mod aws;
pub mod cloudformation;
pub mod commands;
pub mod engine;
pub mod output;
pub mod policy;
pub mod resources;
pub mod spec;
pub mod systems;
pub mod template;
