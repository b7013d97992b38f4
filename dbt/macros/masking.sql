{#- Masked identifiers (dim_customers contacts, customer_identity_map displays): enough to recognise,
    never enough to contact or to rebuild the identifier.  Short identifiers show less, so a display
    never gives a whole one away (`a***@masking.test` would give `a@masking.test` away):
    mask_email('jane.doe@masking.test') -> 'j***@masking.test' (first character: local part of 4+)
    mask_email('ann@masking.test')      -> '***@masking.test' (local part of 1-3 characters)
    mask_phone('+8801795326165')       -> '+88****65'          (8+ digits: two first, two last)
    mask_phone('+2901234')             -> '+****'              (under 8 digits: none)
    mask_identifier('member_id', 'M-1042') -> 'M-1042'; an id that is an e-mail or phone-shaped is
    masked like one. -#}
{% macro mask_email(expr) -%}
    case when {{ expr }} is null then null
         when {{ dbt.length(dbt.split_part(expr, "'@'", 1)) }} >= 4
             then concat(substring({{ expr }}, 1, 1), '***@', {{ dbt.split_part(expr, "'@'", 2) }})
         else concat('***@', {{ dbt.split_part(expr, "'@'", 2) }}) end
{%- endmacro %}

{% macro mask_phone(expr) -%}
    case when {{ expr }} is null then null
         when {{ dbt.length(expr) }} >= 9
             then concat(substring({{ expr }}, 1, 3), '****', substring({{ expr }}, {{ dbt.length(expr) }} - 1, 2))
         else '+****' end
{%- endmacro %}

{#- Ids (member, Square customer, a generic export's customer id) are shown as they are, except values
    that are contact data in an id column (loyalty schemes that use the e-mail or phone as the member
    number, a cashier typing a phone into Reference ID): those are masked like an e-mail or a phone. -#}
{% macro mask_identifier(id_type, expr) -%}
    case
        when {{ id_type }} = 'email' then {{ mask_email(expr) }}
        when {{ id_type }} = 'phone' then {{ mask_phone(expr) }}
        when {{ expr }} like '%@%' then {{ mask_email(expr) }}
        when {{ regex_extract(expr, '^(?:[^:]*:)?([+]?[0-9][0-9 ().-]{5,}[0-9])$') }} is not null
            then concat('****', substring({{ expr }}, {{ dbt.length(expr) }} - 1, 2))
        else {{ expr }}
    end
{%- endmacro %}
