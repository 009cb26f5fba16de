//! PNG figures drawn by colop itself: coefficient maps, profiles, loss curves, rollouts.
