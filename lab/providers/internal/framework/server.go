package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	pbempty "google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Ctx is handed to every resource operation.
type Ctx struct {
	context.Context
	Host       *provider.HostClient // nil in unit tests
	URN        resource.URN
	Name       string
	ProgramDir string // where relative asset paths resolve ("": the working directory, i.e. the project)
	// LogSink receives log lines when there is no host (tests).
	LogSink func(sev diag.Severity, msg string, ephemeral bool)
}

// Log sends a message to the engine (persisted in the update's diagnostics).
func (c *Ctx) Log(sev diag.Severity, msg string) { c.log(sev, msg, false) }

// LogStatus sends an ephemeral status message (shown in the progress display's Info column).
func (c *Ctx) LogStatus(sev diag.Severity, msg string) { c.log(sev, msg, true) }

func (c *Ctx) log(sev diag.Severity, msg string, ephemeral bool) {
	if c.LogSink != nil {
		c.LogSink(sev, msg, ephemeral)
	}
	if c.Host == nil {
		return
	}
	if ephemeral {
		_ = c.Host.LogStatus(c.Context, sev, c.URN, msg)
	} else {
		_ = c.Host.Log(c.Context, sev, c.URN, msg)
	}
}

// Resource declares one resource type and its operations. Create/Update are only called with
// preview=false unless noted; Check, Diff and previews are handled generically from Props.
type Resource struct {
	Token string
	Desc  string
	Props []Prop

	// Validate adds resource-specific check failures (unknown values must be skipped).
	Validate func(c *Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure
	// CheckHook may rewrite the checked inputs (e.g. compute an asset hash). Optional.
	CheckHook func(c *Ctx, news resource.PropertyMap) (resource.PropertyMap, error)
	// DiffHook may add replacement reasons beyond plain input changes (e.g. certificate renewal).
	DiffHook func(c *Ctx, olds, news resource.PropertyMap) (replaceKeys []string)
	// Create runs outside of preview; returns the ID and all outputs.
	Create func(c *Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error)
	// PreviewCreate returns the planned outputs; default: inputs plus unknown output-only properties.
	PreviewCreate func(c *Ctx, news resource.PropertyMap) resource.PropertyMap
	// Update handles in-place changes (preview included). Nil: every change replaces.
	Update func(c *Ctx, id string, olds, news resource.PropertyMap, preview bool) (resource.PropertyMap, error)
	// Delete; nil means nothing to do.
	Delete func(c *Ctx, id string, olds resource.PropertyMap) error
	// Read refreshes state; nil returns the state unchanged.
	Read func(c *Ctx, id string, state, inputs resource.PropertyMap) (resource.PropertyMap, resource.PropertyMap, error)
}

func (r *Resource) prop(name string) *Prop {
	for i := range r.Props {
		if r.Props[i].Name == name {
			return &r.Props[i]
		}
	}
	return nil
}

// Server implements pulumirpc.ResourceProviderServer for a set of resources.
type Server struct {
	pulumirpc.UnimplementedResourceProviderServer
	Name      string
	Version   string
	Host      *provider.HostClient
	Resources map[string]*Resource
}

// New builds a server for the given resources.
func New(name, version string, host *provider.HostClient, resources ...*Resource) *Server {
	s := &Server{Name: name, Version: version, Host: host, Resources: map[string]*Resource{}}
	for _, r := range resources {
		s.Resources[r.Token] = r
	}
	return s
}

// Serve runs the plugin main loop (provider.Main).
func Serve(name, version string, resources ...*Resource) {
	err := provider.Main(name, func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return New(name, version, host, resources...), nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func (s *Server) ctx(ctx context.Context, urn, name string) *Ctx {
	return &Ctx{Context: ctx, Host: s.Host, URN: resource.URN(urn), Name: name}
}

func (s *Server) resourceFor(typ, urn string) (*Resource, error) {
	if typ == "" && urn != "" {
		typ = string(resource.URN(urn).Type())
	}
	r, ok := s.Resources[typ]
	if !ok {
		return nil, fmt.Errorf("%s (lab stand-in %s): resource type %q is not implemented", s.Name, s.Version, typ)
	}
	return r, nil
}

func unmarshal(st *structpb.Struct, label string) (resource.PropertyMap, error) {
	if st == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(st, plugin.MarshalOptions{
		Label: label, KeepUnknowns: true, KeepSecrets: true, SkipNulls: true,
	})
}

func marshal(m resource.PropertyMap, label string) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, plugin.MarshalOptions{
		Label: label, KeepUnknowns: true, KeepSecrets: true, SkipNulls: true,
	})
}

// markSecrets wraps every output declared secret.
func (r *Resource) markSecrets(m resource.PropertyMap) resource.PropertyMap {
	for _, p := range r.Props {
		k := resource.PropertyKey(p.Name)
		if v, ok := m[k]; ok && p.Secret && !v.IsSecret() && !v.IsNull() {
			m[k] = resource.MakeSecret(v)
		}
	}
	return m
}

// ---- plugin-level methods -----------------------------------------------------------------------

func (s *Server) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: s.Version}, nil
}

func (s *Server) Handshake(context.Context, *pulumirpc.ProviderHandshakeRequest) (*pulumirpc.ProviderHandshakeResponse, error) {
	// req.ProgramDirectory is the plugin's own directory, not the Pulumi program's: relative asset
	// paths resolve against the working directory, which the engine sets to the project directory.
	return &pulumirpc.ProviderHandshakeResponse{AcceptSecrets: true, AcceptResources: true}, nil
}

func (s *Server) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	b, err := json.Marshal(s.schema())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetSchemaResponse{Schema: string(b)}, nil
}

func (s *Server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.News}, nil
}

func (s *Server) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (s *Server) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: true}, nil
}

func (s *Server) Cancel(context.Context, *pbempty.Empty) (*pbempty.Empty, error) {
	return &pbempty.Empty{}, nil
}

// ---- resource methods ---------------------------------------------------------------------------

func (s *Server) Check(ctx context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	r, err := s.resourceFor(req.Type, req.Urn)
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.News, "check.news")
	if err != nil {
		return nil, err
	}
	c := s.ctx(ctx, req.Urn, req.Name)
	checked, failures, err := r.check(c, news)
	if err != nil {
		return nil, err
	}
	out, err := marshal(checked, "check.inputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: out, Failures: failures}, nil
}

// CheckInputs applies defaults and validation (exported for tests).
func (r *Resource) CheckInputs(c *Ctx, news resource.PropertyMap) (resource.PropertyMap, []*pulumirpc.CheckFailure, error) {
	return r.check(c, news)
}

func (r *Resource) check(c *Ctx, news resource.PropertyMap) (resource.PropertyMap, []*pulumirpc.CheckFailure, error) {
	news = Copy(news)
	var failures []*pulumirpc.CheckFailure
	for k, v := range news {
		p := r.prop(string(k))
		if strings.HasPrefix(string(k), "__") {
			continue
		}
		if p == nil || !p.In {
			if v.IsNull() {
				delete(news, k)
				continue
			}
			failures = append(failures, &pulumirpc.CheckFailure{Property: string(k),
				Reason: fmt.Sprintf("%s is not supported by this lab stand-in for %s (see lab/providers/README.md)", k, r.Token)})
		}
	}
	for _, p := range r.Props {
		if !p.In {
			continue
		}
		k := resource.PropertyKey(p.Name)
		v, present := news[k]
		if present && v.IsNull() {
			delete(news, k)
			present = false
		}
		if !present && p.Default != nil {
			news[k] = ToValue(p.Default)
			present = true
		}
		if !present && p.Required {
			failures = append(failures, &pulumirpc.CheckFailure{Property: p.Name,
				Reason: fmt.Sprintf("Missing required property '%s'", p.Name)})
		}
	}
	if r.Validate != nil {
		failures = append(failures, r.Validate(c, news)...)
	}
	if r.CheckHook != nil && len(failures) == 0 {
		var err error
		if news, err = r.CheckHook(c, news); err != nil {
			return nil, nil, err
		}
	}
	return news, failures, nil
}

// DiffResult is the outcome of a generic diff (exported for tests).
type DiffResult struct {
	Changed  []string
	Replaces []string
	Detailed map[string]*pulumirpc.PropertyDiff
}

// DiffState compares old state with new (checked) inputs (exported for tests).
func (r *Resource) DiffState(c *Ctx, olds, news resource.PropertyMap, ignore []string) DiffResult {
	res := DiffResult{Detailed: map[string]*pulumirpc.PropertyDiff{}}
	ignored := map[string]bool{}
	for _, k := range ignore {
		ignored[k] = true
	}
	replaces := map[string]bool{}
	for _, p := range r.Props {
		if !p.In || ignored[p.Name] {
			continue
		}
		k := resource.PropertyKey(p.Name)
		o, oOK := olds[k]
		n, nOK := news[k]
		oOK = oOK && !o.IsNull()
		nOK = nOK && !n.IsNull()
		if !oOK && !nOK {
			continue
		}
		if oOK && nOK && Equal(o, n, p.PEM) {
			continue
		}
		kind := pulumirpc.PropertyDiff_UPDATE
		switch {
		case !oOK:
			kind = pulumirpc.PropertyDiff_ADD
		case !nOK:
			kind = pulumirpc.PropertyDiff_DELETE
		}
		if p.Replace {
			kind++ // ADD -> ADD_REPLACE, DELETE -> DELETE_REPLACE, UPDATE -> UPDATE_REPLACE
			replaces[p.Name] = true
		}
		res.Changed = append(res.Changed, p.Name)
		res.Detailed[p.Name] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
	}
	if r.DiffHook != nil {
		for _, k := range r.DiffHook(c, olds, news) {
			if !replaces[k] {
				replaces[k] = true
				if _, ok := res.Detailed[k]; !ok {
					res.Changed = append(res.Changed, k)
				}
				res.Detailed[k] = &pulumirpc.PropertyDiff{Kind: pulumirpc.PropertyDiff_UPDATE_REPLACE}
			}
		}
	}
	res.Replaces = sortedKeys(replaces)
	return res
}

func (s *Server) Diff(ctx context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	r, err := s.resourceFor(req.Type, req.Urn)
	if err != nil {
		return nil, err
	}
	olds, err := unmarshal(req.Olds, "diff.olds")
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.News, "diff.news")
	if err != nil {
		return nil, err
	}
	d := r.DiffState(s.ctx(ctx, req.Urn, req.Name), olds, news, req.IgnoreChanges)
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(d.Changed) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{
		Changes: changes, Replaces: d.Replaces, Diffs: d.Changed,
		DetailedDiff: d.Detailed, HasDetailedDiff: true, DeleteBeforeReplace: false,
	}, nil
}

// PreviewOutputs is the default planned state: the inputs plus unknown output-only properties.
func (r *Resource) PreviewOutputs(news resource.PropertyMap) resource.PropertyMap {
	outs := Copy(news)
	for _, p := range r.Props {
		if !p.In {
			outs[resource.PropertyKey(p.Name)] = resource.MakeComputed(resource.NewStringProperty(""))
		}
	}
	return outs
}

func (s *Server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	r, err := s.resourceFor(req.Type, req.Urn)
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.Properties, "create.news")
	if err != nil {
		return nil, err
	}
	c := s.ctx(ctx, req.Urn, req.Name)
	var id string
	var outs resource.PropertyMap
	if req.Preview {
		if r.PreviewCreate != nil {
			outs = r.PreviewCreate(c, news)
		} else {
			outs = r.PreviewOutputs(news)
		}
	} else {
		id, outs, err = r.Create(c, news)
		if err != nil {
			return nil, err
		}
	}
	st, err := marshal(r.markSecrets(outs), "create.outs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: st}, nil
}

func (s *Server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	r, err := s.resourceFor(req.Type, req.Urn)
	if err != nil {
		return nil, err
	}
	if r.Update == nil {
		return nil, errors.New(r.Token + ": every change replaces this resource; Update must not be called")
	}
	olds, err := unmarshal(req.Olds, "update.olds")
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.News, "update.news")
	if err != nil {
		return nil, err
	}
	outs, err := r.Update(s.ctx(ctx, req.Urn, req.Name), req.Id, olds, news, req.Preview)
	if err != nil {
		return nil, err
	}
	st, err := marshal(r.markSecrets(outs), "update.outs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: st}, nil
}

func (s *Server) Read(ctx context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	r, err := s.resourceFor(req.Type, req.Urn)
	if err != nil {
		return nil, err
	}
	if req.Properties == nil || len(req.Properties.Fields) == 0 {
		return nil, fmt.Errorf("%s: import (read without state) is not supported by this lab stand-in", r.Token)
	}
	state, err := unmarshal(req.Properties, "read.state")
	if err != nil {
		return nil, err
	}
	inputs, err := unmarshal(req.Inputs, "read.inputs")
	if err != nil {
		return nil, err
	}
	if r.Read != nil {
		if state, inputs, err = r.Read(s.ctx(ctx, req.Urn, req.Name), req.Id, state, inputs); err != nil {
			return nil, err
		}
	}
	st, err := marshal(r.markSecrets(state), "read.state")
	if err != nil {
		return nil, err
	}
	in, err := marshal(inputs, "read.inputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: req.Id, Properties: st, Inputs: in}, nil
}

func (s *Server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*pbempty.Empty, error) {
	r, err := s.resourceFor(req.Type, req.Urn)
	if err != nil {
		return nil, err
	}
	if r.Delete != nil {
		olds, err := unmarshal(req.Properties, "delete.olds")
		if err != nil {
			return nil, err
		}
		if err := r.Delete(s.ctx(ctx, req.Urn, req.Name), req.Id, olds); err != nil {
			return nil, err
		}
	}
	return &pbempty.Empty{}, nil
}
