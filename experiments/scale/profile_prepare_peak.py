"""Where does ``mrs prepare amazon2023`` peak? Samples RSS every 10 ms in a thread and keeps the
main thread's stack at the highest sample; prints the peak and that stack.

    python experiments/scale/profile_prepare_peak.py REVIEWS.jsonl [OUT]
"""
import sys
import threading
import time
import traceback

peak: list = [0, None]
main = threading.main_thread().ident


def rss_mb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def sampler() -> None:
    while True:
        r = rss_mb()
        if r > peak[0]:
            frame = sys._current_frames().get(main)
            peak[0], peak[1] = r, traceback.format_stack(frame)[-4:] if frame else None
        time.sleep(0.01)


if __name__ == "__main__":
    threading.Thread(target=sampler, daemon=True).start()
    import mrs.prep.amazon2023 as A

    out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/mrs_bench/profile_out"
    A.prepare_amazon2023(A.Amazon2023Config(reviews=sys.argv[1], out=out))
    print("PEAK", peak[0], "MB")
    print("".join(peak[1] or []))
