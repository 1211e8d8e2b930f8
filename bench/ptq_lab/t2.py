import sys; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
from edgeseal.converters.probe import tflite_graph  # reads the flatbuffer's tensors
q = (C/"adaq100_stem.tflite").read_bytes()
W = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string((C/"adaq100.onnx").read_bytes()).graph.initializer}
from edgeseal.converters.adaround import int8_grid
levels = {}
for n, w in W.items():
    if n.endswith(".weight") and w.ndim == 4:
        s = int8_grid(w); levels[n] = np.round(w / s).astype(np.int64)
it = tflite_graph(q); it.allocate_tensors()
ok = bad = 0
for d in it.get_tensor_details():
    qp = d["quantization_parameters"]
    if d["dtype"] == np.int8 and len(qp["scales"]) > 1 and len(d["shape"]) == 4:
        v = it.get_tensor(d["index"]).astype(np.int64)
        # find onnx weight with matching multiset
        c = [n for n, l in levels.items() if l.size == v.size and np.array_equal(np.sort(l.ravel()), np.sort(v.ravel()))]
        if c: ok += 1
        else:
            bad += 1
            if bad < 3:
                cand = [n for n, l in levels.items() if l.size == v.size]
                print(d["name"][-60:], v.shape, "absmax per ch", np.abs(v).reshape(v.shape[0] if qp["quantized_dimension"]==0 else -1, -1).max(1)[:5] if qp["quantized_dimension"]==0 else np.abs(v).max(axis=(0,1,2))[:5], len(cand))
print("exact", ok, "differ", bad)
