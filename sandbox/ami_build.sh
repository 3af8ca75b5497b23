#!/bin/sh
# Builds the pieces of the sandbox's "AMI" layer (see ami.py), one per call:
#
#   ami_build.sh enroot ARCHIVE DESTDIR   Enroot from its source archive, installed under DESTDIR
#                                         as the release packages lay it out (prefix /usr, /etc/enroot)
#   ami_build.sh pyxis ARCHIVE DESTDIR    Pyxis's spank_pyxis.so against this machine's Slurm headers,
#                                         at DESTDIR/usr/local/lib/slurm (where ParallelCluster AMIs have it)
#   ami_build.sh standin SOURCE DESTDIR   the stand-in SPANK plugin (spank/spank_pyxis_standin.c) there instead
#   ami_build.sh image IMAGE              a busybox root file system packed as a squashfs container image
#   ami_build.sh venvs NODE_REQS COOKBOOK_REQS DESTDIR
#                                         ParallelCluster's node and cookbook virtualenvs under
#                                         DESTDIR/opt/parallelcluster/pyenv/versions/<python>/envs, from PyPI
#   ami_build.sh registry-image DIR       the same root file system as a container image for the sandbox's
#                                         registry: laid out with umoci, kept in skopeo's dir: format as a
#                                         Docker v2 schema 2 image (what `docker push` sends to ECR)
#
# ARCHIVE has been checked against its pinned sha256 by the caller. Work happens in a
# temporary directory next to DESTDIR (or IMAGE), removed on exit.
set -eu

what=$1
shift
for target; do :; done  # the last argument: DESTDIR or IMAGE
tmp=$(mktemp -d "$(dirname "$target")/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

build_enroot() {
  archive=$1 dest=$2
  tar -xzf "$archive" -C "$tmp" --strip-components=1
  cd "$tmp"
  # The upstream tree builds musl, the kernel headers and makeself from git submodules,
  # which an archive does not carry; Debian's musl-tools, linux-libc-dev and makeself
  # stand in, placed where deps/Makefile would have installed its own.
  dist=$tmp/deps/dist
  specs=/usr/lib/$(gcc -dumpmachine | sed 's/-gnu$/-musl/')/musl-gcc.specs
  mkdir -p "$dist/musl/bin" "$dist/musl/lib" "$dist/makeself/bin" "$dist/linux/include"
  # deps/musl.patch's change to the musl-gcc wrapper, applied to Debian's specs: without it
  # -static-pie is ignored and the helpers would need musl's loader at run time.
  sed -e 's#^%{!shared: \(.*\)/Scrt1.o}#%{static-pie: \1/rcrt1.o} %{!static-pie: %{!shared: \1/Scrt1.o}}#' \
      -e 's#^-dynamic-linker \([^ ]*\) -nostdlib#%{static-pie:-no-dynamic-linker -static -pie} %{!static-pie:-dynamic-linker \1} -nostdlib#' \
      "$specs" > "$dist/musl/lib/musl-gcc.specs"
  grep -q 'static-pie: ' "$dist/musl/lib/musl-gcc.specs" || { echo "could not adapt $specs for -static-pie" >&2; exit 1; }
  printf '#!/bin/sh\nexec gcc "$@" -specs "%s"\n' "$dist/musl/lib/musl-gcc.specs" > "$dist/musl/bin/musl-gcc"
  chmod 755 "$dist/musl/bin/musl-gcc"
  install -m 755 "$(command -v makeself)" "$dist/makeself/bin/enroot-makeself"
  arch_include=/usr/include/$(gcc -dumpmachine)
  cp -r /usr/include/linux /usr/include/asm-generic "$arch_include/asm" "$dist/linux/include/"
  touch deps/musl/.stamp deps/makeself/.stamp deps/linux-headers/.stamp
  make -C deps libbsd CC=gcc
  # "git submodule update" fails without a git tree; the Makefile ignores that.
  make prefix=/usr sysconfdir=/etc CC=gcc
  for helper in bin/enroot-*; do
    if readelf -l "$helper" | grep -q INTERP; then echo "$helper is not statically linked" >&2; exit 1; fi
  done
  make install prefix=/usr sysconfdir=/etc CC=gcc DESTDIR="$dest"
  # As ParallelCluster's cookbook installs it: the Slurm hooks enabled.
  ln -sf /usr/share/enroot/hooks.d/50-slurm-pmi.sh "$dest/etc/enroot/hooks.d/"
  ln -sf /usr/share/enroot/hooks.d/50-slurm-pytorch.sh "$dest/etc/enroot/hooks.d/"
}

build_pyxis() {
  archive=$1 dest=$2
  tar -xzf "$archive" -C "$tmp" --strip-components=1
  make -C "$tmp"
  install -D -m 755 "$tmp/spank_pyxis.so" "$dest/usr/local/lib/slurm/spank_pyxis.so"
}

build_standin() {
  source=$1 dest=$2
  mkdir -p "$dest/usr/local/lib/slurm"
  gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$dest/usr/local/lib/slurm/spank_pyxis.so" "$source"
}

busybox_root() {
  root=$1
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/root"
  install -m 755 /bin/busybox "$root/bin/busybox"
  for applet in sh cat echo hostname id ls ps sleep true uname; do ln -s busybox "$root/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"
}

build_image() {
  image=$1
  busybox_root "$tmp/rootfs"
  mksquashfs "$tmp/rootfs" "$tmp/image.sqsh" -all-root -noappend -no-progress -quiet
  mv "$tmp/image.sqsh" "$image"
}

build_venvs() {
  node_reqs=$1 cookbook_reqs=$2 dest=$3
  version=$(/usr/bin/python3 -c 'import platform; print(platform.python_version())')
  envs=/opt/parallelcluster/pyenv/versions/$version/envs
  mkdir -p "$dest/opt" "$tmp/opt-work"
  # Built where the nodes see them, so that the virtualenvs' paths and their scripts' interpreter lines are
  # the nodes' paths: in a mount namespace of its own, /opt is an overlay whose upper layer is the layer's
  # /opt (this machine's /opt, which may hold pip's local indexes, stays visible below it).
  # shellcheck disable=SC2016  # the inner script expands its own arguments
  unshare --mount --propagation private /bin/sh -eu -c '
    mount -t overlay sandbox-build-opt -o "lowerdir=/opt,upperdir=$1/opt,workdir=$5" /opt
    for env in node_virtualenv cookbook_virtualenv; do /usr/bin/python3 -m venv "$2/$env"; done
    "$2/node_virtualenv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$3"
    "$2/cookbook_virtualenv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$4"
  ' build-venvs "$dest" "$envs" "$node_reqs" "$cookbook_reqs" "$tmp/opt-work"
}

build_registry_image() {
  out=$1
  umoci init --layout "$tmp/oci"
  umoci new --image "$tmp/oci:latest"
  umoci unpack --image "$tmp/oci:latest" "$tmp/bundle" > /dev/null
  busybox_root "$tmp/bundle/rootfs"
  umoci repack --image "$tmp/oci:latest" "$tmp/bundle"
  umoci config --image "$tmp/oci:latest" --architecture "$(dpkg --print-architecture)" --os linux \
    --config.env PATH=/bin --config.cmd /bin/sh --author "hpc.pcluster sandbox"
  skopeo copy --quiet --format v2s2 "oci:$tmp/oci:latest" "dir:$tmp/image"
  rm -rf "$out"
  mv "$tmp/image" "$out"
}

case $what in
  enroot | pyxis | standin | image | venvs) "build_$what" "$@" ;;
  registry-image) build_registry_image "$@" ;;
  *) echo "usage: $0 enroot|pyxis|standin|image|venvs|registry-image ..." >&2; exit 2 ;;
esac
