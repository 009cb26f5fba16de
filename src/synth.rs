//! Synthetic datasets rolled out from a known operator: the quickstart's data and the tests'
//! ground truth.
