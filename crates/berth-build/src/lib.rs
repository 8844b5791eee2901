//! The Dockerfile language as pure functions, as dockerd's classic builder reads it: the
//! parser ([`parser`]: directives, continuations, comments, heredocs, JSON vs shell form),
//! typed instructions and stages ([`instructions`]), Docker's shell-word lexer
//! ([`lex`]: `$VAR`, `${VAR:-x}`, quotes, word splitting), which instruction expands what
//! ([`expand`]), build-arg scoping ([`args`]), `--target` selection ([`stages`]),
//! `.dockerignore` matching
//! ([`dockerignore`]) and the classic builder's history strings and cache keys ([`cache`]).
//!
//! Nothing here runs a container, touches the store or does I/O: the engine's build module
//! executes the steps. Every input is untrusted: the functions are total (no panic on any
//! bytes) and bounded ([`parser::MAX_DOCKERFILE_SIZE`], [`parser::MAX_LINE_SIZE`]).

#![forbid(unsafe_code)]

pub mod args;
pub mod cache;
pub mod dockerignore;
pub mod error;
pub mod expand;
pub mod instructions;
pub mod lex;
pub mod parser;
pub mod stages;

pub use error::Error;
pub use instructions::{parse_dockerfile, Command, Dockerfile, Instruction, Stage};
