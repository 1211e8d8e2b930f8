package io.edgeseal;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

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
        /** v2: "sha-256" or "blake2b-256" (§10.2); whatever string the file has, or null. v1 ignores it. */
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

    /** One input or output tensor: name, NumPy dtype name, shape ({@code null} = dynamic dimension). */
    public static final class TensorSpec {
        public final String name;
        public final String dtype;
        public final List<Long> shape;

        private TensorSpec(String name, String dtype, List<Long> shape) {
            this.name = name;
            this.dtype = dtype;
            this.shape = shape;
        }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder(name).append(": ").append(dtype).append('[');
            for (int i = 0; i < shape.size(); i++) {
                sb.append(i == 0 ? "" : ", ").append(shape.get(i) == null ? "?" : shape.get(i).toString());
            }
            return sb.append(']').toString();
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
            if (!(item instanceof Map)) {
                throw bad(member);
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> s = (Map<String, Object>) item;
            Object shape = s.get("shape");
            if (!(shape instanceof List)) {
                throw bad(member + ".shape");
            }
            List<Long> dims = new ArrayList<>();
            for (Object dim : (List<?>) shape) {
                dims.add(dim == Json.NULL ? null : integer(dim, member + ".shape"));
            }
            quant(s.get("quant"), member + ".quant");
            out.add(new TensorSpec(string(s, "name"), string(s, "dtype"), Collections.unmodifiableList(dims)));
        }
        return Collections.unmodifiableList(out);
    }

    /** Optional quantization: absent or null, or {"scale": [number], "zero_point": [int], "axis"?: int or null}. */
    private static void quant(Object value, String what) throws Json.ParseException {
        if (value == null || value == Json.NULL) {
            return;
        }
        if (!(value instanceof Map)) {
            throw bad(what);
        }
        Map<?, ?> q = (Map<?, ?>) value;
        Object scale = q.get("scale");
        Object zero = q.get("zero_point");
        Object axis = q.get("axis");
        if (!(scale instanceof List) || !(zero instanceof List)
                || (axis != null && axis != Json.NULL && !(axis instanceof Long))) {
            throw bad(what);
        }
        for (Object s : (List<?>) scale) {
            if (!(s instanceof Long) && !(s instanceof Double)) {
                throw bad(what + ".scale");
            }
        }
        for (Object z : (List<?>) zero) {
            if (!(z instanceof Long)) {
                throw bad(what + ".zero_point");
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
