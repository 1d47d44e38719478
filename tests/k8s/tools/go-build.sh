# Sourced by the build scripts of the test cluster (tests/k8s/tools/build.sh)
# and of the kind test (tests/kind/tools/build.sh): how a program is built
# from its Go module into a folder kept by version. Needs OUT set.

# module_version DIR MODULE: the version DIR's go.mod requires.
module_version() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }

# build NAME VERSION DIR -- GO_BUILD_ARGS...: go build into $OUT/NAME-VERSION
# unless it is complete there already (a version bump builds anew; the Go
# caches make a rebuild after a flag change incremental). Prints NAME=DIR.
build() {
  local name=$1 version=$2 dir=$3 dest=$OUT/$1-$2
  shift 4
  if [[ ! -f $dest/.complete ]]; then
    echo "build: $name $version" >&2
    rm -rf "$dest"
    mkdir -p "$dest"
    (cd "$dir" && go build -trimpath -o "$dest/" "$@")
    touch "$dest/.complete"
  fi
  echo "${name//-/_}=$dest"
}

# k8s_ldflags VERSION: what hack/lib/version.sh sets, so `kubectl version`,
# Helm's kubeVersion check and kubeadm (which picks the control-plane
# images' tags by it) see the real release, not v0.0.0-master.
k8s_ldflags() {
  local version=$1 minor pkg flags="-s -w"
  minor=${version#v1.}
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}
