package zoo

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/hyperrep/hyperrep/convert"
	"github.com/hyperrep/hyperrep/onnx"
)

// A checkpoint directory holds model.onnx, the eval model with the weights
// after the epoch, and optimizer.safetensors, the optimiser's state for
// each weight tensor ("conv1.weight.exp_avg", ...; Param shapes) with the
// optimiser's name and step count in its metadata. The result.jsonl line of
// the epoch is written after both, so a checkpoint counts only once its
// line is there; a rerun rewrites an epoch it finds incomplete, with the
// same bytes.

// save writes the checkpoints of epoch e of every member and then their
// result.jsonl.
func (w *worker) save(s *session, c *chunk, e int) error {
	r := w.run
	ps := r.arch.Params()
	n := r.arch.NumParams()
	flat := s.step.currentWeights().Float32s()
	state := s.step.currentState()
	names := stateNames(c.spec.opt)
	steps := (r.train.N + r.job.Batch - 1) / r.job.Batch
	for p, m := range c.members {
		dir := CheckpointDir(r.dir, m.id, e)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("zoo: %w", err)
		}
		model, err := r.arch.Model(m.hyper.Activation, split32(flat[p*n:(p+1)*n], ps))
		if err != nil {
			return err
		}
		if err := model.Write(filepath.Join(dir, modelFile)); err != nil {
			return err
		}
		tensors := map[string]convert.Tensor{}
		for k, name := range names {
			for i, t := range split32(state[k].Float32s()[p*n:(p+1)*n], ps) {
				tensors[ps[i].Name+"."+name] = convert.Float32Tensor(ps[i].Shape, t)
			}
		}
		meta := map[string]string{"optimizer": c.spec.opt, "step": strconv.Itoa(e * steps), "epoch": strconv.Itoa(e)}
		if err := convert.WriteSafetensors(filepath.Join(dir, optimizerFile), tensors, meta); err != nil {
			return err
		}
	}
	for _, m := range c.members {
		if err := writeResults(r.dir, m.id, m.epochs[:e+1]); err != nil {
			return err
		}
	}
	return nil
}

// load puts the members' weights and optimiser state of epoch e into the
// stepper's current Values.
func (w *worker) load(s *session, c *chunk, e int) error {
	r := w.run
	ps := r.arch.Params()
	n := r.arch.NumParams()
	flat := s.step.currentWeights().Float32s()
	state := s.step.currentState()
	for p := range c.spec.models {
		m := c.slot(p)
		dir := CheckpointDir(r.dir, m.id, e)
		model, err := onnx.Read(filepath.Join(dir, modelFile))
		if err != nil {
			return err
		}
		ws, err := r.arch.Weights(model)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		dst := flat[p*n : (p+1)*n]
		for _, t := range ws {
			dst = dst[copy(dst, t):]
		}
		f, err := convert.ReadSafetensors(filepath.Join(dir, optimizerFile))
		if err != nil {
			return err
		}
		if got := f.Metadata["optimizer"]; got != c.spec.opt {
			return fmt.Errorf("zoo: %s: optimizer state of %q, model trains with %q", dir, got, c.spec.opt)
		}
		for k, name := range stateNames(c.spec.opt) {
			dst := state[k].Float32s()[p*n : (p+1)*n]
			for _, prm := range ps {
				t, ok := f.Tensors[prm.Name+"."+name]
				if !ok || !slices.Equal(t.Shape, prm.Shape) {
					return fmt.Errorf("zoo: %s: no %s.%s of shape %v", dir, prm.Name, name, prm.Shape)
				}
				v, err := t.Float32s()
				if err != nil {
					return fmt.Errorf("zoo: %s: %s.%s: %w", dir, prm.Name, name, err)
				}
				dst = dst[copy(dst, v):]
			}
		}
	}
	return nil
}

// split32 cuts one model's flat weights into its Params' tensors.
func split32(flat []float32, ps []Param) [][]float32 {
	out := make([][]float32, len(ps))
	for i, p := range ps {
		out[i], flat = flat[:p.Size()], flat[p.Size():]
	}
	return out
}
