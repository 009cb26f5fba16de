//! Parameter-space campaigns of PIC runs: plan, run over ranks, resume.
