// Package crdtest applies the checks an API server makes on
// CustomResourceDefinitions and on custom resources, in process, so tests
// can prove that a CRD would be accepted (structural schema, CEL rules that
// compile and fit the cost budget) and that an object would be accepted or
// rejected when created or updated (unknown fields, defaults, OpenAPI
// validation, CEL rules including transition rules) without an API server.
//
// It links the API server's validation code: import it from tests and
// tools, not from services.
package crdtest

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// Definition is a parsed, validated CRD.
type Definition struct {
	// CRD is the definition as an API server stores it.
	CRD *apiextensions.CustomResourceDefinition
}

// ParseDefinition decodes a CRD manifest strictly and validates it as an API
// server would on create. The error lists every problem found.
func ParseDefinition(manifest []byte) (*Definition, error) {
	var v1crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(manifest, &v1crd); err != nil {
		return nil, fmt.Errorf("decode crd: %w", err)
	}
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(&v1crd)
	var crd apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1crd, &crd, nil); err != nil {
		return nil, fmt.Errorf("convert crd %s: %w", v1crd.Name, err)
	}
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &crd); len(errs) > 0 {
		return nil, fmt.Errorf("crd %s is invalid: %w", crd.Name, errs.ToAggregate())
	}
	return &Definition{CRD: &crd}, nil
}

// version is what is needed to admit objects of one served version.
type version struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// Validator admits custom resources of the CRDs it was built from.
type Validator struct {
	versions map[schema.GroupVersionKind]version
}

// New parses and validates each CRD manifest and prepares to admit objects
// of every version they serve.
func New(manifests ...[]byte) (*Validator, error) {
	v := &Validator{versions: map[schema.GroupVersionKind]version{}}
	for _, m := range manifests {
		def, err := ParseDefinition(m)
		if err != nil {
			return nil, err
		}
		crd := def.CRD
		for _, ver := range crd.Spec.Versions {
			props := crd.Spec.Validation
			if ver.Schema != nil {
				props = ver.Schema
			}
			if props == nil || props.OpenAPIV3Schema == nil {
				return nil, fmt.Errorf("crd %s version %s has no schema", crd.Name, ver.Name)
			}
			s, err := structuralschema.NewStructural(props.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("crd %s version %s: structural schema: %w", crd.Name, ver.Name, err)
			}
			sv, _, err := apiservervalidation.NewSchemaValidator(props.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("crd %s version %s: schema validator: %w", crd.Name, ver.Name, err)
			}
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: ver.Name, Kind: crd.Spec.Names.Kind}
			v.versions[gvk] = version{
				structural: s,
				schema:     sv,
				cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
			}
		}
	}
	return v, nil
}

// Create admits a new object (YAML or JSON) as an API server with strict
// field validation would: unknown fields are an error, defaults are applied,
// then the OpenAPI schema and CEL rules are checked. It returns the
// defaulted object.
func (v *Validator) Create(manifest []byte) (map[string]any, error) {
	return v.admit(nil, manifest)
}

// Update admits a change from old to updated, including CEL transition
// rules (those that use oldSelf). It returns the defaulted new object.
func (v *Validator) Update(old, updated []byte) (map[string]any, error) {
	return v.admit(old, updated)
}

func (v *Validator) admit(oldManifest, manifest []byte) (map[string]any, error) {
	obj, ver, err := v.decode(manifest)
	if err != nil {
		return nil, err
	}
	var oldObj map[string]any
	if oldManifest != nil {
		if oldObj, _, err = v.decode(oldManifest); err != nil {
			return nil, fmt.Errorf("old object: %w", err)
		}
	}
	if errs := v.validate(ver, obj, oldObj); len(errs) > 0 {
		return obj, &InvalidError{Errors: errs}
	}
	return obj, nil
}

// decode parses an object, rejects unknown fields and applies defaults.
func (v *Validator) decode(manifest []byte) (map[string]any, version, error) {
	// Decode as the API server does: JSON numbers that are integers become
	// int64, which CEL rules comparing integers depend on.
	data, err := yaml.YAMLToJSON(manifest)
	if err != nil {
		return nil, version{}, fmt.Errorf("decode object: %w", err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return nil, version{}, fmt.Errorf("decode object: %w", err)
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, version{}, fmt.Errorf("apiVersion %q: %w", apiVersion, err)
	}
	gvk := gv.WithKind(kind)
	ver, ok := v.versions[gvk]
	if !ok {
		return nil, version{}, fmt.Errorf("no CRD serves %s", gvk)
	}
	unknown := pruning.PruneWithOptions(obj, ver.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	if len(unknown) > 0 {
		var errs field.ErrorList
		for _, p := range unknown {
			errs = append(errs, field.Invalid(field.NewPath(p), nil, "unknown field"))
		}
		return nil, version{}, &InvalidError{Errors: errs}
	}
	defaulting.Default(obj, ver.structural)
	return obj, ver, nil
}

// validate runs the checks of the API server's custom resource strategy, in
// its order: OpenAPI schema, list-type invariants, then CEL rules unless an
// earlier error blocks them.
func (v *Validator) validate(ver version, obj, oldObj map[string]any) field.ErrorList {
	var errs field.ErrorList
	if oldObj == nil {
		errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, ver.schema)...)
		errs = append(errs, listtype.ValidateListSetsAndMaps(nil, ver.structural, obj)...)
	} else {
		errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, obj, oldObj, ver.schema)...)
		if oldErrs := listtype.ValidateListSetsAndMaps(nil, ver.structural, oldObj); len(oldErrs) == 0 {
			errs = append(errs, listtype.ValidateListSetsAndMaps(nil, ver.structural, obj)...)
		}
	}
	if blocking(errs) {
		return append(errs, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid"))
	}
	var old any
	if oldObj != nil {
		old = oldObj
	}
	celErrs, _ := ver.cel.Validate(context.Background(), nil, ver.structural, obj, old, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// blocking reports whether errs stop the API server from running CEL rules.
func blocking(errs field.ErrorList) bool {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
	}
	return false
}

// InvalidError is an object rejected by the schema or its rules.
type InvalidError struct {
	// Errors are the field errors, as an API server reports them.
	Errors field.ErrorList
}

// Error implements error.
func (e *InvalidError) Error() string {
	return e.Errors.ToAggregate().Error()
}

// IsInvalid reports whether err is (or wraps) an *InvalidError.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}
