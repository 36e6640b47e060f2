"""One arm of the smaller-model (Dense 4-4-1) A/B. Prints and saves per-epoch history + summary as JSON."""
import argparse
import json
import os
import time
import numpy as np
OUT = os.environ.get("CAPACITY_AB_DIR", ".")
p = argparse.ArgumentParser()
p.add_argument("--data", default="cnnlab")      # cnnlab | k2tok | k2tok_all
p.add_argument("--opt", default="k2")           # k2 (RMSpropKeras2) | k3 (keras rmsprop)
p.add_argument("--loss", default="k3")          # k3 (stock) | k2clip (Keras 2.0.8 clip+relogit)
p.add_argument("--dtype", default="float32")
p.add_argument("--units", default="4,4")
p.add_argument("--seed", type=int, default=1)
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--drop_const", action="store_true")  # zero the start (1) and OOV (2) features
p.add_argument("--tag", default="")
a = p.parse_args()
import keras
from keras import ops
from cnnlab.data import imdb as I
from cnnlab.models.keras2 import RMSpropKeras2

if a.data == "cnnlab":
    arr = I.load(os.environ["CNNLAB_DATA_DIR"], I.Options(num_words=10000, encoding="multi_hot", maxlen=None))
    xtr, ytr, xte, yte = arr.x_train, arr.y_train, arr.x_test, arr.y_test
else:
    f = np.load(f"{OUT}/corpus_{a.data}.npz")
    rng = np.random.RandomState(113)
    out = []
    for s in ("train", "test"):
        order = np.arange(len(f[f"{s}_labels"])); rng.shuffle(order)
        flat, offs = I.shuffled(f[f"{s}_ids"], f[f"{s}_offsets"], order)
        flat = np.where(flat < 10000, flat, 2)
        out += [I.multi_hot(flat, offs, 10000), f[f"{s}_labels"][order].astype(np.float32)]
    xtr, ytr, xte, yte = out
if a.drop_const:
    xtr[:, 1:3] = 0; xte[:, 1:3] = 0
xtr = xtr.astype(a.dtype); xte = xte.astype(a.dtype)
stats = {"active_mean": float(xtr.sum(1).mean()), "oov_frac": float(xtr[:, 2].mean()),
         "col_freq_top": [round(float(v), 3) for v in xtr.mean(0)[:12]]}

keras.utils.set_random_seed(a.seed)
units = [int(u) for u in a.units.split(",")]
model = keras.Sequential([keras.Input((10000,))] + [keras.layers.Dense(u, activation="relu") for u in units]
                         + [keras.layers.Dense(1, activation="sigmoid")])
# init diagnostics: fraction of training reviews on which each first-layer unit is active
W, b = model.layers[0].get_weights()
pre = xtr.astype(np.float32) @ W + b
stats["init_active_frac_l1"] = [round(float(v), 3) for v in (pre > 0).mean(0)]
def k2clip(y_true, y_pred):
    eps = 1e-7
    o = ops.clip(y_pred, eps, 1 - eps)
    logits = ops.log(o / (1 - o))
    y_true = ops.cast(ops.reshape(y_true, ops.shape(o)), o.dtype)
    return ops.mean(ops.maximum(logits, 0) - logits * y_true + ops.log1p(ops.exp(-ops.abs(logits))), axis=-1)
opt = RMSpropKeras2() if a.opt == "k2" else keras.optimizers.RMSprop()
model.compile(optimizer=opt, loss=k2clip if a.loss == "k2clip" else "binary_crossentropy", metrics=["accuracy"])
t = time.time()
h = model.fit(xtr, ytr, epochs=a.epochs, batch_size=512, validation_data=(xte, yte), verbose=0).history
W, b = model.layers[0].get_weights()
stats["final_active_frac_l1"] = [round(float(v), 3) for v in ((xtr.astype(np.float32) @ W + b) > 0).mean(0)]
vl = np.array(h["val_loss"]); va = np.array(h["val_accuracy"])
res = {"args": vars(a), "ep1": [round(h["loss"][0], 4), round(h["accuracy"][0], 4), round(h["val_loss"][0], 4), round(h["val_accuracy"][0], 4)],
       "min_val_loss": [round(float(vl.min()), 4), int(vl.argmin()) + 1], "max_val_acc": [round(float(va.max()), 4), int(va.argmax()) + 1],
       "ep20_loss": round(h["loss"][-1], 4), "stats": stats, "secs": round(time.time() - t),
       "history": {k: [round(x, 4) for x in v] for k, v in h.items()}}
name = a.tag or f"{a.data}_{a.opt}_{a.loss}_{a.dtype}_{a.units}_s{a.seed}{'_noconst' if a.drop_const else ''}"
json.dump(res, open(f"{OUT}/res_{name}.json", "w"), indent=1)
print(name, json.dumps({k: v for k, v in res.items() if k not in ("history", "args")}))
