package io.edgeseal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The cleartext manifest of a sealed package (docs/format.md §2): readable with no key, bound into
 * every AEAD tag. Before {@link SealedPackage#authenticate} it is only what the file claims.
 */
public final class Manifest {
    /** Payload encoding (§2, {@code payload}). */
    public static final class Payload {
        public final String cipher; // "aes-256-gcm" or "chacha20-poly1305"
        public final int chunkSize;
        final byte[] noncePrefix; // 7 bytes
        public final String codec; // "none" or "zlib"
        public final long size; // bytes encrypted (after the codec)
        public final long originalSize; // bytes after decoding
        /** v2: "blake3", "sha-256" or "blake2b-256" (§10.2); whatever string the file has, or null. v1 ignores it. */
        public final String chunkDigest;

        private Payload(String cipher, int chunkSize, byte[] noncePrefix, String codec, long size, long originalSize,
                        String chunkDigest) {
            this.chunkDigest = chunkDigest;
            this.cipher = cipher;
            this.chunkSize = chunkSize;
            this.noncePrefix = noncePrefix;
            this.codec = codec;
            this.size = size;
            this.originalSize = originalSize;
        }

        /** Number of chunks: {@code max(1, ceil(size / chunkSize))}. */
        public long chunkCount() {
            return Math.max(1, (size + chunkSize - 1) / chunkSize);
        }
    }

    /**
     * One model input or output (docs/format.md §2.2): a tensor ({@link #dtype} and {@link #shape}), or a
     * {@code "sequence"}, {@code "map"} or {@code "optional"} value of {@link #elem}.
     */
    public static final class TensorSpec {
        /** The input or output name; {@code ""} for an element spec inside {@link #elem}. */
        public final String name;
        /** {@code "tensor"}, {@code "sequence"}, {@code "map"} or {@code "optional"}. */
        public final String kind;
        /** Element type of a tensor (a NumPy or ml_dtypes name, or {@code "string"}); null for other kinds. */
        public final String dtype;
        /** Dimensions of a tensor, a {@code null} entry being a free one; null when the rank is unknown. */
        public final List<Long> shape;
        /** Element of a sequence or optional value, value type of a map; null for a tensor. */
        public final TensorSpec elem;
        /** Key type of a map; null for other kinds. */
        public final String key;
        /** An input the caller may leave out. */
        public final boolean optional;

        private TensorSpec(String name, String kind, String dtype, List<Long> shape, TensorSpec elem, String key,
                           boolean optional) {
            this.name = name;
            this.kind = kind;
            this.dtype = dtype;
            this.shape = shape;
            this.elem = elem;
            this.key = key;
            this.optional = optional;
        }

        /** {@code float32[?, 16]}, {@code float32[*]} (unknown rank), {@code sequence<map<int64, float32[*]>>}. */
        public String typeString() {
            if (kind.equals("map")) {
                return "map<" + key + ", " + elem.typeString() + ">";
            }
            if (!kind.equals("tensor")) {
                return kind + "<" + elem.typeString() + ">";
            }
            if (shape == null) {
                return dtype + "[*]";
            }
            StringBuilder sb = new StringBuilder(dtype).append('[');
            for (int i = 0; i < shape.size(); i++) {
                sb.append(i == 0 ? "" : ", ").append(shape.get(i) == null ? "?" : shape.get(i).toString());
            }
            return sb.append(']').toString();
        }

        @Override
        public String toString() {
            return name + ": " + typeString() + (optional ? " (optional)" : "");
        }
    }

    private static final Set<String> KINDS = new HashSet<>(Arrays.asList("tensor", "sequence", "map", "optional"));
    private static final Set<String> DTYPES = new HashSet<>(Arrays.asList(
            "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32",
            "float64", "complex64", "complex128", "string", "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz",
            "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn", "int4", "uint4"));
    private static final Set<String> MAP_KEYS = new HashSet<>(Arrays.asList(
            "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "string"));
    private static final long MAX_DIM = 1L << 62;
    private static final int MAX_SPEC_DEPTH = 8;

    /** Zero-point range {low, high} of the integer dtypes that may carry quantization parameters. */
    private static long[] intRange(String dtype) {
        switch (dtype) {
            case "int4": return new long[] {-8, 7};
            case "uint4": return new long[] {0, 15};
            case "int8": return new long[] {Byte.MIN_VALUE, Byte.MAX_VALUE};
            case "uint8": return new long[] {0, 255};
            case "int16": return new long[] {Short.MIN_VALUE, Short.MAX_VALUE};
            case "uint16": return new long[] {0, 65535};
            case "int32": return new long[] {Integer.MIN_VALUE, Integer.MAX_VALUE};
            case "uint32": return new long[] {0, 4294967295L};
            case "int64": return new long[] {Long.MIN_VALUE, Long.MAX_VALUE};
            case "uint64": return new long[] {0, Long.MAX_VALUE};
            default: return null;
        }
    }

    public final String kind; // "model" or "dataset"
    public final String contentFormat; // "onnx", "tflite", "npz", ...
    public final String name;
    public final long modelVersion;
    public final List<TensorSpec> inputs;
    public final List<TensorSpec> outputs;
    public final String target; // null when absent or JSON null
    public final long createdAt; // Unix seconds
    public final Long expiresAt; // Unix seconds, null = never
    public final String producer;
    public final Payload payload;
    /** The whole parsed object, for members this class does not model ({@code compression}, {@code metadata}). */
    public final Map<String, Object> raw;

    private Manifest(Map<String, Object> d) throws Json.ParseException {
        raw = d;
        kind = string(d, "kind");
        if (!kind.equals("model") && !kind.equals("dataset")) {
            throw bad("kind");
        }
        contentFormat = string(d, "content_format");
        name = string(d, "name");
        modelVersion = integer(d.get("model_version"), "model_version");
        inputs = specs(d.get("inputs"), "inputs");
        outputs = specs(d.get("outputs"), "outputs");
        Object t = d.get("target"); // required: a string or null
        if (t != Json.NULL && !(t instanceof String)) {
            throw bad("target");
        }
        target = t instanceof String ? (String) t : null;
        createdAt = integer(d.get("created_at"), "created_at");
        Object e = d.get("expires_at"); // required: an integer or null, later than created_at
        expiresAt = e == Json.NULL ? null : integer(e, "expires_at");
        if (expiresAt != null && expiresAt <= createdAt) {
            throw bad("expires_at");
        }
        producer = string(d, "producer");
        if (!(d.get("compression") instanceof Map)) {
            throw bad("compression");
        }
        Object m = d.get("metadata");
        if (!(m instanceof Map)) {
            throw bad("metadata");
        }
        for (Object value : ((Map<?, ?>) m).values()) {
            if (!(value instanceof String)) {
                throw bad("metadata");
            }
        }
        payload = payload(d.get("payload"));
    }

    /** Parse the manifest bytes of a package; any malformation is an {@link InvalidPackageException}. */
    static Manifest parse(byte[] utf8) throws InvalidPackageException {
        try {
            Object root = Json.parse(utf8);
            if (!(root instanceof Map)) {
                throw new InvalidPackageException();
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> d = (Map<String, Object>) root;
            return new Manifest(d);
        } catch (Json.ParseException e) {
            throw new InvalidPackageException();
        }
    }

    private static Payload payload(Object value) throws Json.ParseException {
        if (!(value instanceof Map)) {
            throw bad("payload");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> d = (Map<String, Object>) value;
        String cipher = string(d, "cipher");
        if (!cipher.equals("aes-256-gcm") && !cipher.equals("chacha20-poly1305")) {
            throw bad("payload.cipher");
        }
        long chunk = integer(d.get("chunk_size"), "payload.chunk_size");
        if (chunk < 1024 || chunk > (1L << 28)) {
            throw bad("payload.chunk_size");
        }
        byte[] prefix = lowerHex(string(d, "nonce_prefix"), 7);
        String codec = string(d, "codec");
        if (!codec.equals("none") && !codec.equals("zlib")) {
            throw bad("payload.codec");
        }
        long size = integer(d.get("size"), "payload.size");
        long original = integer(d.get("original_size"), "payload.original_size");
        if (codec.equals("none") && size != original) {
            throw bad("payload.size");
        }
        Object digest = d.get("chunk_digest");
        Payload info = new Payload(cipher, (int) chunk, prefix, codec, size, original,
                digest instanceof String ? (String) digest : null);
        if (info.chunkCount() >= (1L << 32)) {
            throw bad("payload.size");
        }
        return info;
    }

    private static List<TensorSpec> specs(Object value, String member) throws Json.ParseException {
        if (!(value instanceof List)) {
            throw bad(member);
        }
        List<TensorSpec> out = new ArrayList<>();
        for (Object item : (List<?>) value) {
            out.add(spec(item, member, 1));
        }
        return Collections.unmodifiableList(out);
    }

    /** One tensor spec (§2.2) at nesting level {@code depth} (1 for an input or output itself). */
    private static TensorSpec spec(Object value, String what, int depth) throws Json.ParseException {
        if (!(value instanceof Map)) {
            throw bad(what);
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> s = (Map<String, Object>) value;
        String name = "";
        if (depth > 1) {
            if (s.containsKey("name")) {
                throw bad(what + ".name");
            }
        } else {
            name = string(s, "name");
            if (name.isEmpty()) {
                throw bad(what + ".name");
            }
        }
        Object k = s.get("kind");
        String kind = k == null ? "tensor" : k instanceof String ? (String) k : "";
        if (!KINDS.contains(kind)) {
            throw bad(what + ".kind");
        }
        Object o = s.get("optional");
        if ((o != null && !(o instanceof Boolean)) || (depth > 1 && Boolean.TRUE.equals(o))) {
            throw bad(what + ".optional");
        }
        boolean optional = Boolean.TRUE.equals(o);
        if (kind.equals("tensor")) {
            if (s.containsKey("elem") || s.containsKey("key")) {
                throw bad(what);
            }
            String dtype = string(s, "dtype");
            if (!DTYPES.contains(dtype)) {
                throw bad(what + ".dtype");
            }
            Object shape = s.get("shape");
            List<Long> dims = null;
            if (shape != Json.NULL) { // null: unknown rank; absent: malformed
                if (!(shape instanceof List)) {
                    throw bad(what + ".shape");
                }
                dims = new ArrayList<>();
                for (Object dim : (List<?>) shape) {
                    if (dim == Json.NULL) {
                        dims.add(null);
                    } else {
                        long n = integer(dim, what + ".shape");
                        if (n > MAX_DIM) {
                            throw bad(what + ".shape");
                        }
                        dims.add(n);
                    }
                }
                dims = Collections.unmodifiableList(dims);
            }
            quant(s.get("quant"), dtype, dims, what + ".quant");
            return new TensorSpec(name, kind, dtype, dims, null, null, optional);
        }
        if (s.containsKey("dtype") || s.containsKey("shape") || s.containsKey("quant") || depth >= MAX_SPEC_DEPTH) {
            throw bad(what);
        }
        if (!s.containsKey("elem")) {
            throw bad(what + ".elem");
        }
        TensorSpec elem = spec(s.get("elem"), what + ".elem", depth + 1);
        String key = null;
        if (kind.equals("map")) {
            key = string(s, "key");
            if (!MAP_KEYS.contains(key)) {
                throw bad(what + ".key");
            }
        } else if (s.containsKey("key")) {
            throw bad(what + ".key");
        }
        return new TensorSpec(name, kind, null, null, elem, key, optional);
    }

    /** Quantization (§2.2): absent or null, or scales > 0, zero points in the dtype's range, a valid axis. */
    private static void quant(Object value, String dtype, List<Long> dims, String what) throws Json.ParseException {
        if (value == null || value == Json.NULL) {
            return;
        }
        long[] range = intRange(dtype);
        if (!(value instanceof Map) || range == null) {
            throw bad(what);
        }
        Map<?, ?> q = (Map<?, ?>) value;
        Object scale = q.get("scale");
        Object zero = q.get("zero_point");
        Object axis = q.get("axis");
        if (!(scale instanceof List) || !(zero instanceof List)) {
            throw bad(what);
        }
        List<?> scales = (List<?>) scale;
        List<?> zeros = (List<?>) zero;
        if (scales.isEmpty() || scales.size() != zeros.size()) {
            throw bad(what);
        }
        for (Object x : scales) {
            double d = x instanceof Long ? (double) (Long) x : x instanceof Double ? (Double) x : Double.NaN;
            if (!(d > 0) || Double.isInfinite(d)) {
                throw bad(what + ".scale");
            }
        }
        for (Object z : zeros) {
            if (!(z instanceof Long) || (Long) z < range[0] || (Long) z > range[1]) {
                throw bad(what + ".zero_point");
            }
        }
        if (axis == null || axis == Json.NULL) {
            if (scales.size() > 1) {
                throw bad(what + ".axis");
            }
            return;
        }
        long a = integer(axis, what + ".axis");
        if (dims != null) {
            if (a >= dims.size()) {
                throw bad(what + ".axis");
            }
            Long channels = dims.get((int) a);
            if (scales.size() > 1 && channels != null && channels != scales.size()) {
                throw bad(what + ".scale");
            }
        }
    }

    private static String string(Map<String, Object> d, String key) throws Json.ParseException {
        Object v = d.get(key);
        if (!(v instanceof String)) {
            throw bad(key);
        }
        return (String) v;
    }

    /** A JSON integer ≥ 0 that fits a long: no booleans, fractions, exponents or negatives (§2). */
    private static long integer(Object v, String what) throws Json.ParseException {
        if (!(v instanceof Long) || (Long) v < 0) {
            throw bad(what);
        }
        return (Long) v;
    }

    private static byte[] lowerHex(String s, int bytes) throws Json.ParseException {
        if (s.length() != 2 * bytes) {
            throw bad("payload.nonce_prefix");
        }
        byte[] out = new byte[bytes];
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
            if (d < 0) {
                throw bad("payload.nonce_prefix");
            }
            out[i / 2] |= (byte) (i % 2 == 0 ? d << 4 : d);
        }
        return out;
    }

    private static Json.ParseException bad(String member) {
        return new Json.ParseException("manifest member " + member + " is missing or malformed", 0);
    }
}
