#!/usr/bin/env bash
# Build valkit with `--features cuda` on a machine that has no GPU and no CUDA install.
#
# The CUDA toolkit comes from NVIDIA's wheels on PyPI, installed into a cached venv. The CUDA 12
# wheels carry no `nvcc` (nvidia-cuda-nvcc-cu12 ships only ptxas), so this uses the CUDA 13
# wheels, which lay out a complete toolkit under site-packages/nvidia/cu13/{bin,include,lib,nvvm}.
# candle links cudarc with `dynamic-linking`, so the link needs libcuda.so, which no wheel ships
# (it is the driver): the script builds a stub libcuda.so.1 from cuda.h whose every entry point
# returns CUDA_ERROR_STUB_LIBRARY, the same thing NVIDIA's own lib/stubs/libcuda.so does.
#
# Usage: scripts/check-cuda.sh             install (first run only), build, smoke-test the binary
#        scripts/check-cuda.sh --env       install, then print `export` lines for the toolkit
#                                          (eval "$(scripts/check-cuda.sh --env)"; cargo build ...)
# Environment:
#   VALKIT_CUDA_CACHE  where the venv and the assembled toolkit live (~/.cache/valkit-cuda)
#   CUDA_COMPUTE_CAP   GPU architecture the kernels are compiled for (90: H100/H200)
#   CARGO_TARGET_DIR   cargo's target dir (target/cuda, apart from the normal build)
#   CARGO_BUILD_JOBS   cargo jobs (2); CUDAFORGE_THREADS: parallel nvcc runs per build script (1)
#   NVCC_CCBIN         host compiler for nvcc, if not the g++ on PATH (cudaforge then also passes
#                      -allow-unsupported-compiler)
#
# The binary it builds needs, at run time, libcuda.so.1 (the NVIDIA driver, R580 or newer for
# CUDA 13) and the CUDA 13 libraries: `$CACHE/cuda/lib64` on LD_LIBRARY_PATH will do.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${VALKIT_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valkit-cuda}
venv=$cache/venv
root=$cache/cuda

# One CUDA release throughout: these are the versions the cuda-toolkit==13.4.3 meta-package pins.
# cudarc 0.19.10 knows CUDA up to 13.4 and reads the version from `nvcc --version`, so a newer
# nvcc needs a newer cudarc first.
wheels=(
    nvidia-cuda-nvcc==13.4.92     # nvcc, ptxas, fatbinary, nvlink, cudafe++
    nvidia-nvvm==13.4.92          # cicc, libdevice
    nvidia-cuda-crt==13.4.92      # include/crt (host_config.h, ...)
    nvidia-cuda-runtime==13.4.92  # cuda.h, cuda_runtime.h, cuda_fp16/bf16/fp8.h, mma.h, libcudart
    nvidia-cuda-cccl==13.3.4.3.1  # include/cccl: cub, thrust, cuda/std
    nvidia-cuda-nvrtc==13.4.92    # libnvrtc (cudarc `nvrtc`)
    nvidia-cublas==13.8.0.4       # libcublas, libcublasLt (cudarc `cublas`, `cublaslt`)
    nvidia-curand==10.4.4.72      # libcurand (cudarc `curand`)
)
stamp="v1 ${wheels[*]}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'check-cuda: %s\n' "$*" >&2; exit 1; }

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "missing $*: install it (apt-get install $*)"
    fi
    say "apt-get install $*"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# nvcc needs a host C++ compiler (CUDA 13.4 takes GCC 6 to 15); the stub needs a C compiler.
if ! command -v g++ >/dev/null || ! command -v gcc >/dev/null; then
    apt_install g++ gcc
fi

install_wheels() {
    if [ -f "$venv/.valkit-stamp" ] && [ "$(cat "$venv/.valkit-stamp")" = "$stamp" ]; then
        return
    fi
    say "installing the CUDA toolkit wheels into $venv"
    rm -rf "$venv" "$root"
    mkdir -p "$cache"
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; rm -rf "$venv"; python3 -m venv "$venv"; }
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-deps \
        "${wheels[@]}" >&2
    echo "$stamp" >"$venv/.valkit-stamp"
}

cu13() { "$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))'; }

# A CUDA_ROOT-shaped tree of symlinks into the wheels, with the unversioned lib*.so names the
# linker looks for, and lib64/stubs/libcuda.so.
assemble_root() {
    if [ -f "$root/.valkit-stamp" ] && [ "$(cat "$root/.valkit-stamp")" = "$stamp" ]; then
        return
    fi
    local src tmp lib name
    src=$(cu13)
    if [ ! -x "$src/bin/nvcc" ] || [ ! -x "$src/nvvm/bin/cicc" ] || [ ! -f "$src/include/cuda.h" ]; then
        die "the wheels in $venv are incomplete (no nvcc, cicc or cuda.h under $src): remove $venv"
    fi
    tmp=$root.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp/lib64/stubs"
    ln -s "$src/bin" "$tmp/bin"
    ln -s "$src/include" "$tmp/include"
    ln -s "$src/nvvm" "$tmp/nvvm"
    for lib in "$src"/lib/*.so.* "$src"/lib/*.a; do
        name=$(basename "$lib")
        ln -s "$lib" "$tmp/lib64/$name"
        case $name in
            *.so.*) ln -sf "$name" "$tmp/lib64/${name%%.so.*}.so" ;;
        esac
    done
    ln -s lib64 "$tmp/lib"

    # Every driver entry point cuda.h declares, under each of its naming schemes (the versioned
    # _v2/_v3 names, the legacy ones, the per-thread-stream _ptsz/_ptds ones).
    local syms=$tmp/lib64/stubs/cuda-stub.syms
    for def in "" -D__CUDA_API_VERSION_INTERNAL -DCUDA_API_PER_THREAD_DEFAULT_STREAM; do
        printf '#include <cuda.h>\n' | gcc -E -P $def -I"$src/include" -x c -
    done | tr '\n' ' ' | grep -oE '\bCUresult[[:space:]]+cu[A-Za-z0-9_]+[[:space:]]*\(' \
        | sed -E 's/^CUresult[[:space:]]+//; s/[[:space:]]*\($//' \
        | grep -vxE 'cuGetErrorString|cuGetErrorName' | sort -u >"$syms"
    printf '%s\n' cuProfilerInitialize cuProfilerStart cuProfilerStop >>"$syms"  # cudaProfiler.h
    [ "$(wc -l <"$syms")" -gt 300 ] || die "found only $(wc -l <"$syms") functions in cuda.h"
    {
        echo '/* Generated by scripts/check-cuda.sh: link-time stand-in for the NVIDIA driver. */'
        echo '#define STUB 34 /* CUDA_ERROR_STUB_LIBRARY */'
        echo 'int cuGetErrorName(int e, const char **s) { *s = e == STUB ? "CUDA_ERROR_STUB_LIBRARY" : "CUDA_ERROR"; return 0; }'
        echo 'int cuGetErrorString(int e, const char **s) { *s = e == STUB ? "libcuda.so.1 is the stub from scripts/check-cuda.sh, not an NVIDIA driver" : "unknown error (stub libcuda)"; return 0; }'
        sed 's/.*/int &(void) { return STUB; }/' "$syms"
    } >"$tmp/lib64/stubs/cuda-stub.c"
    gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$tmp/lib64/stubs/libcuda.so.1" "$tmp/lib64/stubs/cuda-stub.c" \
        -Wno-builtin-declaration-mismatch
    ln -s libcuda.so.1 "$tmp/lib64/stubs/libcuda.so"

    echo "$stamp" >"$tmp/.valkit-stamp"
    rm -rf "$root"
    mv "$tmp" "$root"
}

install_wheels
assemble_root

export CUDA_ROOT=$root CUDA_PATH=$root CUDA_HOME=$root
export PATH=$root/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-1}

if [ "${1:-}" = --env ]; then
    for var in CUDA_ROOT CUDA_PATH CUDA_HOME PATH CUDA_COMPUTE_CAP CUDAFORGE_THREADS; do
        printf 'export %s=%q\n' "$var" "${!var}"
    done
    exit 0
fi

cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target/cuda}
say "$(nvcc --version | tail -2 | head -1); sm_${CUDA_COMPUTE_CAP}; host $(${NVCC_CCBIN:-g++} --version | head -1)"
say "cargo build --locked --features cuda --bin valkit (target dir $CARGO_TARGET_DIR)"
cargo build --locked --features cuda --bin valkit -j "${CARGO_BUILD_JOBS:-2}"

bin=$CARGO_TARGET_DIR/debug/valkit
say "smoke test: $bin, with the stub driver"
export LD_LIBRARY_PATH=$root/lib64:$root/lib64/stubs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
"$bin" eval-losses --help >/dev/null || die "$bin eval-losses --help failed"
# There is no GPU here: opening cuda:0 must fail with a one-line error from the device code, not a
# panic. The inputs do not exist; the device is opened first, so the error must be about it.
set +e
out=$("$bin" eval-losses --device cuda:0 --models /nonexistent/models.parquet \
    --batches /nonexistent/batches.parquet --out /nonexistent/out.parquet 2>&1)
rc=$?
set -e
printf '%s\n' "$out" | sed 's/^/    /' >&2
[ "$rc" -ne 0 ] || die "eval-losses --device cuda:0 succeeded without a GPU"
if [ "$rc" -eq 101 ] || grep -q panicked <<<"$out"; then
    die "eval-losses --device cuda:0 panicked (exit $rc)"
fi
grep -q 'cannot open cuda:0' <<<"$out" || die "eval-losses --device cuda:0 failed, but not on opening the device"
say "ok: valkit builds with --features cuda (CUDA 13.4, sm_${CUDA_COMPUTE_CAP}); binary at $bin"
