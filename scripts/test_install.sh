#!/bin/sh
# Installs an already built tree (default build/) into a temporary prefix and
# uses it as an outsider would: the C example built with pkg-config and with
# find_package(moedit) (shared and static), the installed moedit finding its
# shipped models and class names, libmoedit.so exporting moedit_* only, and the
# Python module pip-installed offline into a venv inside the prefix.
set -e
cd "$(dirname "$0")/.."
src=$(pwd)
build=${1:-build}
prefix=$(mktemp -d /tmp/moedit-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
say() { echo "test_install: $*"; }
die() { echo "test_install: FAILED: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/moedit lib/libmoedit.a lib/libmoedit.so include/moedit.h lib/pkgconfig/moedit.pc \
         lib/cmake/moedit/moeditConfig.cmake lib/cmake/moedit/moeditConfigVersion.cmake \
         share/man/man1/moedit.1 share/moedit/models/fmnist-moe/model.pt \
         share/moedit/models/fmnist-switch/defaults.json share/moedit/models/fmnist-vae/config.json \
         share/moedit/imagenet_classes.txt; do
    [ -e "$prefix/$f" ] || die "$f not installed"
done
soname=$(objdump -p "$prefix/lib/libmoedit.so" | awk '/SONAME/ {print $2}')
[ "$soname" = libmoedit.so.0.1 ] || die "SONAME is '$soname'"
others=$(nm -D --defined-only "$prefix/lib/libmoedit.so" | awk '$3 !~ /^moedit_/ && $3 != "MOEDIT_0" {print $3}')
[ -z "$others" ] || die "libmoedit.so exports non-API symbols: $others"
say "layout, SONAME $soname, exports ok"

work="$prefix/work"
mkdir -p "$work"
cd "$work"   # nothing from the source tree's folder is found by accident

# the installed CLI resolves its aliases from share/moedit beside itself
MOEDIT_MODELS= "$prefix/bin/moedit" sample --class 3 --steps 2 --out grid.png 2>err.txt || { cat err.txt; die "installed moedit sample"; }
grep -q "loaded $prefix/share/moedit/models/fmnist-moe/model.pt" err.txt || { cat err.txt; die "alias not from the prefix"; }
# and from $MOEDIT_MODELS first
mkdir models && cp -r "$prefix/share/moedit/models/fmnist-switch" "$prefix/share/moedit/models/fmnist-vae" models/
MOEDIT_MODELS="$work/models" "$prefix/bin/moedit" sample --model fmnist-switch --class 3 --steps 2 --out s.png 2>err.txt ||
    { cat err.txt; die "moedit sample with MOEDIT_MODELS"; }
grep -q "loaded $work/models/fmnist-switch/model.pt" err.txt || { cat err.txt; die "MOEDIT_MODELS not used"; }
say "installed CLI: aliases from the prefix and from MOEDIT_MODELS"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -std=c11 -Wall -Werror "$src/examples/sample.c" $(pkg-config --cflags --libs moedit) \
   -Wl,-rpath,"$prefix/lib" -o sample_pc
./sample_pc 3 > pc.txt
grep -q "routing decisions" pc.txt || die "pkg-config example output: $(cat pc.txt)"
cc -std=c11 -static-libgcc "$src/examples/sample.c" $(pkg-config --cflags --static moedit) \
   "$prefix/lib/libmoedit.a" $(pkg-config --libs-only-other --libs-only-l --static moedit | sed 's/-lmoedit//') -o sample_pc_static
./sample_pc_static 3 > pc_static.txt
cmp pc.txt pc_static.txt || die "static and shared example differ"
say "pkg-config example (shared and static): $(head -1 pc.txt)"

cmake -S "$src/examples" -B cmake-build -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build cmake-build >/dev/null
cmake-build/sample 3 > cm.txt
cmake-build/sample_static 3 > cm_static.txt
cmp pc.txt cm.txt && cmp pc.txt cm_static.txt || die "CMake example differs from the pkg-config one"
say "find_package(moedit) example (moedit::moedit, moedit::moedit_static) ok"

/usr/bin/python3 -m venv --system-site-packages "$prefix/venv"
cp -r "$src/python" pysrc   # pip builds in the folder it is given: keep the source tree clean
"$prefix/venv/bin/python" -m pip install -q --no-index ./pysrc || die "pip install ./python"
"$prefix/venv/bin/python" -c "import moedit; m = moedit.Model('fmnist-moe'); print(m.sample([0, 7], steps=5).shape)" \
    > py.txt || die "python module from the venv"
[ "$(cat py.txt)" = "(2, 4, 8, 8)" ] || die "python printed $(cat py.txt)"
"$prefix/venv/bin/python" -c "
import moedit, sys
assert moedit._lib.lib.path.startswith(sys.argv[1] + '/lib/'), moedit._lib.lib.path
assert moedit.Model('fmnist-moe').path.startswith(sys.argv[1] + '/share/moedit/models/'), moedit.Model('fmnist-moe').path
assert moedit.Model('fmnist-moe').class_ids(['Bag', 'trouser']).tolist() == [8, 1]
import ctypes
buf = ctypes.create_string_buffer(4096)
assert moedit._lib.lib.moedit_data_path(b'imagenet_classes.txt', buf, len(buf)) == 0, moedit._lib.lib.moedit_last_error()
assert buf.value.decode() == sys.argv[1] + '/share/moedit/imagenet_classes.txt', buf.value
" "$prefix" || die "python module did not use the installed library, models and class names"
say "pip-installed Python module ok: $(cat py.txt)"
