"""Where does ``mrs prepare amazon2023`` peak? Samples RSS every 10 ms in a thread and keeps the
main thread's stack at the highest sample; prints the peak and that stack.

    python experiments/scale/profile_prepare_peak.py REVIEWS.jsonl [OUT] [KEY=VALUE ...]

``KEY=VALUE``: Amazon2023Config keys (e.g. ``engine=numpy``, ``memory_mb=1024``).
"""
import dataclasses
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


by_line: dict = {}   # innermost mrs/ source line of the main thread -> highest RSS seen there


def sampler() -> None:
    while True:
        r = rss_mb()
        frame = sys._current_frames().get(main)
        if r > peak[0]:
            peak[0], peak[1] = r, traceback.format_stack(frame)[-4:] if frame else None
        while frame is not None and "/mrs/" not in frame.f_code.co_filename:
            frame = frame.f_back
        if frame is not None:
            key = f"{frame.f_code.co_filename.split('/mrs/')[-1]}:{frame.f_lineno} {frame.f_code.co_name}"
            by_line[key] = max(by_line.get(key, 0), r)
        time.sleep(0.01)


if __name__ == "__main__":
    threading.Thread(target=sampler, daemon=True).start()
    import mrs.prep.amazon2023 as A

    out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/mrs_bench/profile_out"
    sets = dict(kv.split("=", 1) for kv in sys.argv[3:])
    types = {f.name: type(getattr(A.Amazon2023Config(), f.name)) for f in dataclasses.fields(A.Amazon2023Config)}
    kw = {k: (v.lower() == "true") if types[k] is bool else types[k](v) for k, v in sets.items()}
    A.prepare_amazon2023(A.Amazon2023Config(reviews=sys.argv[1], out=out, **kw))
    print("PEAK", peak[0], "MB")
    print("".join(peak[1] or []))
    print("highest RSS by line (MB):")
    for key, r in sorted(by_line.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {r:>6}  {key}")
