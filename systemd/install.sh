#!/usr/bin/env bash
# Install, update or remove the GaitMIL kiosk as a systemd service.
#
#   sudo systemd/install.sh [options]            install or update (idempotent)
#   sudo systemd/install.sh --uninstall [--purge] remove; keeps the outbox and config unless --purge
#
# Options:
#   --root DIR        install into DIR as if it were / (images, tests); nothing is started
#   --prefix DIR      program folder (default /opt/gaitmil-edge): venv, models, docs
#   --user NAME       system user the kiosk runs as (default gaitmil)
#   --runner NAME     tensorrt (default on Jetson) or onnxruntime
#   --model PATH      the site's model: a signed bundle (python -m export bundle), a model folder,
#                     or an ONNX file in its folder (card.json and manifests beside it); installed
#                     into the model store (/var/lib/gaitmil-edge/models/<model id>) and activated
#   --demo-model      install and activate the simulated-data demo (models/demo; trials only):
#                     a new config then allows it (screening.allow_simulated_model = true)
#   --allow-unsigned  accept an unsigned bundle (development only; logged)
#                     Without --model or --demo-model the active model is kept as it is; a machine
#                     without one is refused.
#   --extras LIST     pip extras to install, e.g. realsense (default: realsense); with --runner
#                     tensorrt the cuda-python extra of this CUDA major is added (cuda12 or cuda13)
#   --cuda MAJOR      12 (JetPack 6) or 13 (JetPack 7); default: read from /etc/nv_tegra_release
#                     (R36 -> 12, R38 -> 13), else /usr/local/cuda/version.json
#   --site ID --kiosk ID --broker URL   written into a new config (an existing one is never overwritten)
#   --python PY       interpreter for the venv (default python3; JetPack's, so TensorRT is visible)
#   --no-pip          create the venv but do not pip-install the package (offline images, tests)
#   --no-start        enable the units but do not start them
#   --uninstall       stop, disable and remove units, venv and program folder
#   --purge           with --uninstall: also delete the outbox, the model store and the config
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root=""
prefix="/opt/gaitmil-edge"
user="gaitmil"
runner=""
model=""
extras="realsense"
cuda_major=""
site="site-0"
kiosk="$(hostname -s 2>/dev/null || echo kiosk-0)"
broker="mqtt://127.0.0.1:1883"
python="python3"
pip=1
start=1
uninstall=0
purge=0
demo_model=0
allow_unsigned=0

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) root="${2:?--root needs a folder}"; shift 2 ;;
        --prefix) prefix="${2:?}"; shift 2 ;;
        --user) user="${2:?}"; shift 2 ;;
        --runner) runner="${2:?}"; shift 2 ;;
        --model) model="${2:?}"; shift 2 ;;
        --demo-model) demo_model=1; shift ;;
        --allow-unsigned) allow_unsigned=1; shift ;;
        --extras) extras="${2-}"; shift 2 ;;
        --cuda) cuda_major="${2:?--cuda needs 12 or 13}"; shift 2 ;;
        --site) site="${2:?}"; shift 2 ;;
        --kiosk) kiosk="${2:?}"; shift 2 ;;
        --broker) broker="${2:?}"; shift 2 ;;
        --python) python="${2:?}"; shift 2 ;;
        --no-pip) pip=0; shift ;;
        --no-start) start=0; shift ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

if [ -n "$root" ]; then
    mkdir -p "$root"
    root="$(cd "$root" && pwd)"
    start=0
elif [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo), or use --root DIR to install into a folder"
fi
case "$prefix" in /*) ;; *) die "--prefix must be an absolute path, got '$prefix'" ;; esac
case "$user" in ""|*[!a-z0-9_-]*) die "--user must be lowercase letters, digits, '_' or '-', got '$user'" ;; esac

if [ -z "$runner" ]; then
    # Jetsons (L4T) use TensorRT; anything else the ONNX Runtime CPU path.
    if [ -f "$root/etc/nv_tegra_release" ] || [ -f /etc/nv_tegra_release ]; then runner=tensorrt; else runner=onnxruntime; fi
fi
case "$runner" in tensorrt|onnxruntime) ;; *) die "--runner must be tensorrt or onnxruntime, got '$runner'" ;; esac

# The TensorRT runner and the engine unit need cuda-python of this machine's CUDA major
# (13.x bindings fail on JetPack 6's CUDA 12 driver). It is installed here, with the package,
# before any unit starts: the kiosk unit gives up after 5 failed starts in 10 minutes.
if [ "$runner" = tensorrt ]; then
    if [ -z "$cuda_major" ] && [ -f "$root/etc/nv_tegra_release" ]; then
        case "$(sed -n 's/^# R\([0-9]*\) .*/\1/p' "$root/etc/nv_tegra_release" | head -n 1)" in
            36) cuda_major=12 ;;
            38) cuda_major=13 ;;
        esac
    fi
    if [ -z "$cuda_major" ] && [ -f "$root/usr/local/cuda/version.json" ]; then
        cuda_major="$(sed -n 's/.*"version" *: *"\([0-9]*\)\..*/\1/p' "$root/usr/local/cuda/version.json" | head -n 1)"
    fi
    case "$cuda_major" in
        12|13) extras="${extras:+$extras,}cuda$cuda_major" ;;
        "") die "cannot tell this machine's CUDA major (no L4T R36/R38 in /etc/nv_tegra_release, no /usr/local/cuda/version.json): pass --cuda 12 (JetPack 6) or --cuda 13 (JetPack 7)" ;;
        *) die "--cuda must be 12 (JetPack 6) or 13 (JetPack 7), got '$cuda_major'" ;;
    esac
fi

unit_dir="$root/etc/systemd/system"
conf_dir="$root/etc/gaitmil-edge"
state_dir="$root/var/lib/gaitmil-edge"
sysusers_file="$root/etc/sysusers.d/gaitmil-edge.conf"
units=(gaitmil-edge.service gaitmil-engine.service)

systemctl_() {
    if [ -n "$root" ]; then systemctl --root="$root" "$@"; else systemctl "$@"; fi
}

if [ "$uninstall" -eq 1 ]; then
    for unit in "${units[@]}"; do
        if [ -f "$unit_dir/$unit" ]; then
            if [ -z "$root" ]; then systemctl disable --now "$unit" || true; else systemctl_ disable "$unit" || true; fi
            rm -f "$unit_dir/$unit"
        fi
    done
    [ -z "$root" ] && systemctl daemon-reload
    rm -rf "$root$prefix"
    rm -f "$sysusers_file"
    if [ "$purge" -eq 1 ]; then
        rm -rf "$state_dir" "$conf_dir"
        say "removed units, $prefix, outbox, model store and config; the user '$user' is kept (userdel $user to remove it)"
    else
        say "removed units and $prefix; kept $state_dir (outbox, model store) and $conf_dir (use --purge to delete them)"
    fi
    exit 0
fi

# A fresh machine needs a model named before anything is created: no half install to undo.
if [ -z "$model" ] && [ "$demo_model" -eq 0 ] && [ ! -f "$state_dir/models/active.json" ] \
    && [ ! -f "$conf_dir/kiosk.toml" ]; then
    die "no model on this machine: pass --model BUNDLE|FOLDER (the site's model) or --demo-model (the simulated-data demo, for trials only)"
fi

# 1. The system user (systemd-sysusers is idempotent and works offline with --root).
mkdir -p "$(dirname "$sysusers_file")"
cat > "$sysusers_file.tmp" <<SYSUSERS
# GaitMIL kiosk user, written by systemd/install.sh
u $user - "GaitMIL kiosk" /var/lib/gaitmil-edge
# SupplementaryGroups= in the unit fails when a group is missing: make sure they exist.
g video -
g render -
g plugdev -
SYSUSERS
mv "$sysusers_file.tmp" "$sysusers_file"
if [ -n "$root" ]; then systemd-sysusers --root="$root" "$sysusers_file" >/dev/null
else systemd-sysusers "$sysusers_file" >/dev/null; fi

# 2. Folders. The state folder holds the outbox and the model store (models and their engines).
mkdir -p "$root$prefix/docs" "$conf_dir" "$state_dir"
uid="$(awk -F: -v u="$user" '$1 == u {print $3}' "$root/etc/passwd")"
gid="$(awk -F: -v u="$user" '$1 == u {print $4}' "$root/etc/passwd")"
[ -n "$uid" ] || die "user '$user' was not created in $root/etc/passwd"
# Ownership needs root; an unprivileged --root install (an image build, CI) leaves it to systemd,
# which chowns StateDirectory= at the first start anyway.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; fi; }
as_root chown -R "$uid:$gid" "$state_dir"
chmod 0750 "$state_dir"

# 3. The virtual environment. --system-site-packages lets it see JetPack's
#    TensorRT Python bindings, which are not on PyPI for Jetson.
venv="$root$prefix/venv"
if [ ! -x "$venv/bin/python" ]; then
    if [ "$pip" -eq 1 ]; then "$python" -m venv --system-site-packages "$venv"
    else "$python" -m venv --system-site-packages --without-pip "$venv"; fi
fi
spec="$repo"
[ -n "$extras" ] && spec="$repo[$extras]"
if [ "$pip" -eq 1 ]; then
    say "installing $spec"
    "$venv/bin/python" -m pip install -q --upgrade "$spec"
else
    say "not installing $spec (--no-pip)"
fi

# 4. The model, into the store: one folder per model id, one active pointer (docs/DEPLOY.md).
#    An upgrade without --model never touches the active model: a site's model and its card stay
#    byte-identical. edge.model_store needs only the standard library, so it runs from this
#    checkout with the venv's interpreter even before (or without) pip.
store="$state_dir/models"
[ -n "$model" ] && [ "$demo_model" -eq 1 ] && die "give --model or --demo-model, not both"
store_cmd() { PYTHONPATH="$repo" "$venv/bin/python" -m edge.model_store "$@"; }
if [ "$demo_model" -eq 1 ]; then
    model="$repo/models/demo"
    # TensorRT builds its INT8 engine (gated after the build); on the CPU the FP32 form, because
    # for the tiny demo the CPU INT8 form is slower than FP32 (benchmarks/RESULTS.md) and its
    # agreement with FP32 sits near the 99 % target (models/demo/report.md)
    demo_file="model.onnx"
    [ "$runner" = tensorrt ] && [ -f "$model/model.int8.onnx" ] && demo_file="model.int8.onnx"
    file_args=(--file "$demo_file")
elif [ -n "$model" ]; then
    [ -e "$model" ] || die "no ONNX model found at '$model': pass --model BUNDLE|FOLDER|FILE.onnx (export one with 'python -m export onnx' or 'python -m export bundle')"
    file_args=()
    case "$model" in
        *.onnx) file_args=(--file "$(basename "$model")"); model="$(dirname "$model")" ;;
    esac
fi
if [ -n "$model" ]; then
    unsigned_args=()
    [ "$allow_unsigned" -eq 1 ] && unsigned_args=(--allow-unsigned)
    key_args=()
    for key in "$conf_dir"/keys/*.pub; do [ -f "$key" ] && key_args+=(--trusted-key "$key"); done
    store_cmd install --store "$store" "$model" "${file_args[@]}" "${unsigned_args[@]}" "${key_args[@]}" --activate \
        || die "the model was not activated (the message above says why); the previous active model, if any, stays active"
elif [ -f "$store/active.json" ]; then
    say "kept the active model in $store (install another with --model; see DEPLOY.md)"
elif [ -f "$conf_dir/kiosk.toml" ]; then
    say "kept the model named in $conf_dir/kiosk.toml (no model store yet: see DEPLOY.md, Upgrade)"
else
    die "no model on this machine: pass --model BUNDLE|FOLDER (the site's model) or --demo-model (the simulated-data demo, for trials only)"
fi
[ -f "$repo/docs/DEPLOY.md" ] && install -m 0644 "$repo/docs/DEPLOY.md" "$root$prefix/docs/DEPLOY.md"
install -m 0644 "$repo/edge/data/kiosk.example.toml" "$conf_dir/kiosk.example.toml"
# the store belongs to the kiosk user: the engine unit builds engines into it
as_root chown -R "$uid:$gid" "$state_dir"

# 5. The config: written once, never overwritten (it holds the operator's edits).
# the district's public keys put in /etc/gaitmil-edge/keys/ before the first install (DEPLOY.md)
trusted=""
for key in "$conf_dir"/keys/*.pub; do
    [ -f "$key" ] && trusted="${trusted:+$trusted, }\"/etc/gaitmil-edge/keys/$(basename "$key")\""
done
trusted_line="trusted_keys = [$trusted]"
[ -n "$trusted" ] || trusted_line='# trusted_keys = ["/etc/gaitmil-edge/keys/district.pub"]'
simulated_note=""
if [ "$demo_model" -eq 1 ]; then
    simulated_note='
# --demo-model: the demo model learned from simulated walks only. The service refuses such a
# model unless this is true; set it back to false (and install a real model) before screening.
allow_simulated_model = true'
fi
if [ ! -f "$conf_dir/kiosk.toml" ]; then
    cat > "$conf_dir/kiosk.toml" <<CONFIG
# Written by systemd/install.sh. All keys are explained in kiosk.example.toml beside this file.
# Check it with: $prefix/venv/bin/python -m edge config check /etc/gaitmil-edge/kiosk.toml
state_dir = "/var/lib/gaitmil-edge"

[kiosk]
site_id = "$site"
kiosk_id = "$kiosk"

[source]
uri = "realsense://"

[segmentation]
method = "depth"
# Learn the empty corridor first (see DEPLOY.md), then uncomment:
# site_model = "/var/lib/gaitmil-edge/site.npz"

[model]
# The kiosk runs the store's active model: python -m edge model list | activate | rollback (DEPLOY.md).
store = "/var/lib/gaitmil-edge/models"
runner = "$runner"
# Bundles must be signed by one of these Ed25519 public keys (the district's; DEPLOY.md step 3).
$trusted_line

[screening]$simulated_note

[mqtt]
url = "$broker"

[privacy]
# Nothing is written unless record_walks is on (on-site calibration only, with consent: DEPLOY.md).
# The unit can write only under /var/lib/gaitmil-edge, so record_dir must be there.
record_walks = false
# record_dir = "/var/lib/gaitmil-edge/walks"
CONFIG
    chmod 0640 "$conf_dir/kiosk.toml"
    as_root chown "0:$gid" "$conf_dir/kiosk.toml"
else
    say "kept the existing $conf_dir/kiosk.toml"
    if [ "$demo_model" -eq 1 ] && ! grep -q '^allow_simulated_model *= *true' "$conf_dir/kiosk.toml"; then
        say "note: the kept config does not allow a simulated-data model; the service refuses the demo until [screening] allow_simulated_model = true"
    fi
fi

# 6. Units, rendered with this install's paths.
render() {
    sed -e "s#@PREFIX@#$prefix#g" -e "s#@PYTHON@#$prefix/venv/bin/python#g" -e "s#@USER@#$user#g" \
        -e "s#@CONFIG@#/etc/gaitmil-edge/kiosk.toml#g" "$1"
}
mkdir -p "$unit_dir"
for unit in "${units[@]}"; do
    render "$repo/systemd/$unit.in" > "$unit_dir/$unit.tmp"
    chmod 0644 "$unit_dir/$unit.tmp"
    mv "$unit_dir/$unit.tmp" "$unit_dir/$unit"
done

# 7. Enable (and start). The engine unit only matters for TensorRT.
enable=(gaitmil-edge.service)
if [ "$runner" = tensorrt ]; then enable+=(gaitmil-engine.service)
else systemctl_ disable gaitmil-engine.service >/dev/null 2>&1 || true; fi
if [ -z "$root" ]; then systemctl daemon-reload; fi
systemctl_ enable "${enable[@]}" >/dev/null 2>&1
if [ "$start" -eq 1 ]; then
    systemctl restart "${enable[@]}"
    say "started ${enable[*]}; follow it with: journalctl -u gaitmil-edge -f"
else
    say "installed and enabled ${enable[*]} (not started)"
fi
