import glob
import json
import os

OUT = os.environ.get("CAPACITY_AB_DIR", ".")
rows = []
for f in sorted(glob.glob(f"{OUT}/res_*.json")):
    r = json.load(open(f)); a = r["args"]
    rows.append((a["data"], a["opt"], a["loss"], a["seed"], r["ep1"], r["min_val_loss"], r["max_val_acc"], r["ep20_loss"],
                 r["stats"]["final_active_frac_l1"]))
print("| data | optimizer | loss | seed | ep1 loss / acc | ep1 val_loss / val_acc | min val_loss (ep) | max val_acc (ep) | ep20 loss | final L1 unit active-fraction |")
print("|---|---|---|---|---|---|---|---|---|---|")
for d, o, l, s, e1, mv, ma, e20, fa in sorted(rows):
    print(f"| {d} | {o} | {l} | {s} | {e1[0]:.4f} / {e1[1]:.4f} | {e1[2]:.4f} / {e1[3]:.4f} | {mv[0]:.4f} ({mv[1]}) | {ma[0]:.4f} ({ma[1]}) | {e20:.4f} | {fa} |")
