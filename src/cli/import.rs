//! `colop import`: bring data and operators from other layouts into colop's files.

use super::Context;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Convert folders of NNNNNN.npy histograms plus args.yaml (the reference code's layout) into
    /// one run file <out>/<folder name>.h5 each.
    NpyFolder(NpyFolderArgs),
    /// Turn operator arrays in the reference code's grid units (A [2,Nx,Ny], D [3,Nx,Ny] in the
    /// order xx, yy, xy) into a `tensor` model on the grid of a run file.
    Operator(OperatorArgs),
}

/// Options of `colop import operator`.
#[derive(clap::Args, Debug)]
pub struct OperatorArgs {
    /// Drag in grid units (A/Δv), `.npy` float64 [2, Nx, Ny].
    #[arg(long)]
    pub a: PathBuf,
    /// Diffusion in grid units (D/Δv²), `.npy` float64 [3, Nx, Ny], order xx, yy, xy.
    #[arg(long)]
    pub d: PathBuf,
    /// A run file whose velocity grid the arrays live on.
    #[arg(long)]
    pub like: PathBuf,
    /// The model file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Options of `colop import npy-folder`.
#[derive(clap::Args, Debug)]
pub struct NpyFolderArgs {
    /// Folders to import. Each holds NNNNNN.npy files (2-D float64 count histograms, first index
    /// v_x) and args.yaml with dt, i_start, i_end, v_range, v_range_units, n_bins. Files with
    /// index i_start..=i_end (i_end -1: to the last) are imported, file i at time i·dt; a missing
    /// index between two present ones is an error. Other numeric keys become run parameters.
    #[arg(required = true)]
    pub folders: Vec<PathBuf>,
    /// Directory for the .h5 files (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(cmd: Command, ctx: &Context) -> anyhow::Result<()> {
    match cmd {
        Command::NpyFolder(args) => npy_folder(args, ctx),
        Command::Operator(args) => {
            if ctx.comm.rank() == 0 {
                let model = crate::model_file::import::import_operator(&args.a, &args.d, &args.like)?;
                crate::model_file::write_model(&args.out, &model)?;
                println!("{}", args.out.display());
            }
            Ok(())
        }
    }
}

fn npy_folder(args: NpyFolderArgs, ctx: &Context) -> anyhow::Result<()> {
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    for (folder, out) in args.folders.iter().zip(crate::data::import_npy_folders(&args.folders, &args.out)?) {
        tracing::info!("imported {} -> {}", folder.display(), out.display());
        println!("{}", out.display());
    }
    Ok(())
}
