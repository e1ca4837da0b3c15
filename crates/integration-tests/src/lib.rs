//! Tests of Wallex's infrastructure clients against real servers.
