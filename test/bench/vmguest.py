# SPDX-License-Identifier: Apache-2.0
"""A small real guest for test/bench/effectiveness: Debian's stock kernel (linux-image-amd64,
fetched with `apt-get download` and unpacked with `dpkg-deb -x`) and a busybox-static
initramfs that holds an application image generated from a fixed seed, so that every guest
booted from it holds the same pages in RAM, as guests started from one sandbox image do.

The guest's /init mounts /proc, reads the image once (it lives in the initramfs, so in the
guest's page cache), prints READY_LINE on the serial console and sleeps.

Built once and cached in a directory (default /var/cache/ksm-throttler-bench), keyed by the
kernel package, the image size and the seed. `python3 test/bench/vmguest.py [--cache DIR]`
builds it and prints the paths.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile

DEFAULT_CACHE = "/var/cache/ksm-throttler-bench"
READY_LINE = "ksm-guest: ready"
# Each distinct page of the image appears this many times in it (like a program's and its
# libraries' identical pages), the rest of the image is unique per page.
IMAGE_DUPLICATE_COPIES = 4
IMAGE_DUPLICATE_PERCENT = 25
PAGE = 4096

INIT = f"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox cat /app/image > /dev/null
echo "{READY_LINE} $(/bin/busybox cut -d' ' -f1 /proc/uptime) s after boot, $(/bin/busybox grep MemFree /proc/meminfo)" > /dev/console
exec /bin/busybox sleep 2147483647
"""


def _run(argv, cwd=None):
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout


def _kernel_package():
    """The versioned package linux-image-amd64 depends on (linux-image-6.1.0-N-amd64)."""
    for line in _run(["apt-cache", "depends", "linux-image-amd64"]).splitlines():
        word = line.strip().split(":", 1)
        if len(word) == 2 and word[0].strip() == "Depends" and word[1].strip().startswith("linux-image-"):
            return word[1].strip()
    raise RuntimeError("apt-cache depends linux-image-amd64 names no linux-image-* package (run apt-get update?)")


def _fetch(package, into):
    """apt-get download PACKAGE, then dpkg-deb -x into a directory; returns that directory."""
    with tempfile.TemporaryDirectory(prefix="vmguest.") as tmp:
        os.chmod(tmp, 0o755)  # apt's _apt sandbox user writes the download here
        _run(["apt-get", "download", "-q", package], cwd=tmp)
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if len(debs) != 1:
            raise RuntimeError(f"apt-get download {package} left {debs}")
        os.makedirs(into, exist_ok=True)
        _run(["dpkg-deb", "-x", os.path.join(tmp, debs[0]), into])
    return into


def make_image(mib, seed):
    """mib MiB: IMAGE_DUPLICATE_PERCENT % of the pages in groups of IMAGE_DUPLICATE_COPIES
    identical pages, the rest unique; the same bytes for the same (mib, seed)."""
    rng = random.Random(seed)
    pages = mib * 2**20 // PAGE
    duplicates = pages * IMAGE_DUPLICATE_PERCENT // 100 // IMAGE_DUPLICATE_COPIES
    out = bytearray()
    for _ in range(duplicates):
        out += rng.randbytes(PAGE) * IMAGE_DUPLICATE_COPIES
    out += rng.randbytes((pages - duplicates * IMAGE_DUPLICATE_COPIES) * PAGE)
    return bytes(out)


def _cpio_newc(entries):
    """An uncompressed newc cpio archive of (name, mode, data) entries."""
    out = bytearray()

    def entry(ino, name, mode, data):
        nonlocal out
        name_b = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        out += header.encode() + name_b
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)

    for ino, (name, mode, data) in enumerate(entries, start=1):
        entry(ino, name, mode, data)
    entry(0, "TRAILER!!!", 0, b"")
    return bytes(out)


def build(cache=DEFAULT_CACHE, image_mib=192, seed=12, log=print):
    """Returns (kernel, initrd, description), building what the cache lacks."""
    kernel_package = _kernel_package()
    kernel_dir = os.path.join(cache, kernel_package)
    if not os.path.isdir(os.path.join(kernel_dir, "boot")):
        log(f"vmguest: fetching {kernel_package} into {kernel_dir}")
        shutil.rmtree(kernel_dir, ignore_errors=True)
        _fetch(kernel_package, kernel_dir + ".tmp")
        os.rename(kernel_dir + ".tmp", kernel_dir)
    kernels = sorted(f for f in os.listdir(os.path.join(kernel_dir, "boot")) if f.startswith("vmlinuz-"))
    if not kernels:
        raise RuntimeError(f"{kernel_package} holds no boot/vmlinuz-*")
    kernel = os.path.join(kernel_dir, "boot", kernels[-1])

    busybox_dir = os.path.join(cache, "busybox-static")
    if not os.path.exists(os.path.join(busybox_dir, "bin/busybox")):
        log(f"vmguest: fetching busybox-static into {busybox_dir}")
        shutil.rmtree(busybox_dir, ignore_errors=True)
        _fetch("busybox-static", busybox_dir + ".tmp")
        os.rename(busybox_dir + ".tmp", busybox_dir)

    initrd = os.path.join(cache, f"initrd-{image_mib}mib-seed{seed}.cpio")
    if not os.path.exists(initrd):
        log(f"vmguest: building {initrd} ({image_mib} MiB image, seed {seed})")
        with open(os.path.join(busybox_dir, "bin/busybox"), "rb") as f:
            busybox = f.read()
        archive = _cpio_newc([
            ("bin", 0o040755, b""), ("app", 0o040755, b""),
            ("bin/busybox", 0o100755, busybox), ("bin/sh", 0o100755, busybox),
            ("init", 0o100755, INIT.encode()),
            ("app/image", 0o100644, make_image(image_mib, seed)),
        ])
        with open(initrd + ".tmp", "wb") as f:
            f.write(archive)
        os.rename(initrd + ".tmp", initrd)
    return kernel, initrd, f"{os.path.basename(kernel)} from {kernel_package}, {image_mib} MiB image (seed {seed})"


def kvm_usable():
    """True where a stock guest kernel boots under KVM: /dev/kvm opens and is not PVM (which
    runs only PVM guest kernels)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError:
        return False
    try:
        with open("/proc/modules") as f:
            if any(line.startswith(("kvm_pvm ", "kvm-pvm ")) for line in f):
                return False
    except OSError:
        pass
    return not os.path.exists("/sys/module/kvm_pvm")


def qemu_argv(kernel, initrd, mib, accel, append=""):
    return ["qemu-system-x86_64", "-machine", "pc,mem-merge=on", "-accel", accel, "-m", str(mib),
            "-smp", "1", "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", kernel, "-initrd", initrd,
            "-append", ("console=ttyS0 panic=-1 quiet " + append).strip()]


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="Build (or find in the cache) the benchmark's guest")
    parser.add_argument("--cache", default=DEFAULT_CACHE)
    parser.add_argument("--image-mib", type=int, default=192)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    k, i, d = build(args.cache, args.image_mib, args.seed, log=lambda m: print(m, file=sys.stderr))
    print(k)
    print(i)
    print(d)
    print("KVM usable:", kvm_usable())
