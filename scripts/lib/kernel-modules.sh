# Sourced by scripts/linux-guest and scripts/nested: copies kernel modules out of an
# unpacked Debian linux-image package, dependencies first, for a busybox init to insmod.
#
#   copy_modules PACKAGE_ROOT RELEASE DEST MODULE...
#
# writes DEST/NAME.ko (decompressed) for each module and what it depends on, and
# DEST/load-order with one name per line in an order insmod accepts. Modules that are
# built into the kernel (or absent) are reported and skipped.
copy_modules() {
    local package_root=$1 release=$2 dest=$3; shift 3
    local moddir=$package_root/lib/modules/$release
    [ -f "$moddir/modules.dep" ] || depmod -b "$package_root" "$release"
    local -a order=()
    _add_module() {  # $1: module name; appends its dependencies first
        local path deps dep done_path
        path=$(awk -F: -v n="$1" '{ p = $1; sub(/.*\//, "", p); sub(/\.ko(\.xz|\.zst)?$/, "", p); gsub(/-/, "_", p) } p == n { print $0; exit }' "$moddir/modules.dep")
        [ -n "$path" ] || { echo "modules: $1 is built in or absent"; return 0; }
        deps=${path#*:}; path=${path%%:*}
        for dep in $deps; do
            dep=$(basename "$dep"); dep=${dep%%.ko*}; _add_module "${dep//-/_}"
        done
        for done_path in "${order[@]:-}"; do [ "$done_path" = "$path" ] && return 0; done
        order+=("$path")
    }
    local module path name
    for module in "$@"; do _add_module "$module"; done
    mkdir -p "$dest"
    : > "$dest/load-order"
    for path in "${order[@]:-}"; do
        [ -n "$path" ] || continue
        name=$(basename "$path"); name=${name%%.ko*}
        case "$path" in
            *.ko.xz) xz -dc "$moddir/$path" > "$dest/$name.ko" ;;
            *.ko.zst) zstd -dcq "$moddir/$path" > "$dest/$name.ko" ;;
            *) cp "$moddir/$path" "$dest/$name.ko" ;;
        esac
        echo "$name" >> "$dest/load-order"
    done
    echo "modules: $(tr '\n' ' ' < "$dest/load-order")"
}
