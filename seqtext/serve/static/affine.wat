;; The in-page keyboard's one kernel (keyboard.js): out = W·x + b, in float32 with 128-bit SIMD.
;; keyboard.js holds its bytes; after a change here: wat2wasm affine.wat -o - | base64 -w0 (Debian: wabt).
(module
  (memory (export "memory") 1)
  ;; w: rows × cols floats, row by row; x: cols floats; b: rows floats (0: none); out: rows floats.
  ;; cols is a multiple of 8 (the caller pads W's rows and x with zeros).
  (func (export "affine")
    (param $w i32) (param $b i32) (param $x i32) (param $out i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $p i32) (local $q i32) (local $end i32) (local $a v128) (local $a2 v128) (local $s f32)
    (local.set $p (local.get $w))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $a (v128.const f32x4 0 0 0 0))
        (local.set $a2 (v128.const f32x4 0 0 0 0))
        (local.set $end (i32.add (local.get $p) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $q (local.get $x))
        (block $row_done
          (loop $col
            (br_if $row_done (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $a (f32x4.add (local.get $a) (f32x4.mul (v128.load (local.get $p)) (v128.load (local.get $q)))))
            (local.set $a2 (f32x4.add (local.get $a2)
              (f32x4.mul (v128.load offset=16 (local.get $p)) (v128.load offset=16 (local.get $q)))))
            (local.set $p (i32.add (local.get $p) (i32.const 32)))
            (local.set $q (i32.add (local.get $q) (i32.const 32)))
            (br $col)))
        (local.set $a (f32x4.add (local.get $a) (local.get $a2)))
        (local.set $s (f32.add
          (f32.add (f32x4.extract_lane 0 (local.get $a)) (f32x4.extract_lane 1 (local.get $a)))
          (f32.add (f32x4.extract_lane 2 (local.get $a)) (f32x4.extract_lane 3 (local.get $a)))))
        (if (local.get $b)
          (then (local.set $s (f32.add (local.get $s)
            (f32.load (i32.add (local.get $b) (i32.shl (local.get $r) (i32.const 2))))))))
        (f32.store (i32.add (local.get $out) (i32.shl (local.get $r) (i32.const 2))) (local.get $s))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row)))))
