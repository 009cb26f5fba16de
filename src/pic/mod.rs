//! A 2D3V electrostatic particle-in-cell code with finite-size particles that writes colop datasets.
