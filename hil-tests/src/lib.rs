//! Hardware-in-the-loop test helpers.
