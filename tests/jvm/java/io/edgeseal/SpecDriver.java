package io.edgeseal;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;

/**
 * Test driver for the tensor specs of the JVM reader (tests/jvm/test_jvm_specs.py). Argument: a JSON file holding
 * an array of manifest texts. For each, one line: {@code invalid}, or {@code ok} followed by a tab and
 * {@code in SPEC} / {@code out SPEC} for each input and output, SPEC being {@link Manifest.TensorSpec#toString}.
 */
public final class SpecDriver {
    private SpecDriver() {}

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        Object texts = Json.parse(Files.readAllBytes(Paths.get(args[0])));
        for (Object text : (List<?>) texts) {
            Manifest manifest;
            try {
                manifest = Manifest.parse(((String) text).getBytes(StandardCharsets.UTF_8));
            } catch (InvalidPackageException e) {
                out.println("invalid");
                continue;
            }
            StringBuilder line = new StringBuilder("ok");
            for (Manifest.TensorSpec spec : manifest.inputs) {
                line.append("\tin ").append(spec);
            }
            for (Manifest.TensorSpec spec : manifest.outputs) {
                line.append("\tout ").append(spec);
            }
            out.println(line);
        }
    }
}
